package com.ggcore.runtime;

import com.amazonaws.greengrass.javasdk.GreengrassClientBuilder;
import com.amazonaws.greengrass.javasdk.IotDataClient;
import com.amazonaws.greengrass.javasdk.LambdaClient;
import com.amazonaws.greengrass.javasdk.SecretsManagerClient;
import com.amazonaws.greengrass.javasdk.model.DeleteThingShadowRequest;
import com.amazonaws.greengrass.javasdk.model.GGIotDataException;
import com.amazonaws.greengrass.javasdk.model.GGLambdaException;
import com.amazonaws.greengrass.javasdk.model.GGSecretsManagerException;
import com.amazonaws.greengrass.javasdk.model.GetSecretValueRequest;
import com.amazonaws.greengrass.javasdk.model.GetSecretValueResult;
import com.amazonaws.greengrass.javasdk.model.GetThingShadowRequest;
import com.amazonaws.greengrass.javasdk.model.GetThingShadowResult;
import com.amazonaws.greengrass.javasdk.model.InvalidIotDataRequestException;
import com.amazonaws.greengrass.javasdk.model.InvalidLambdaRequestException;
import com.amazonaws.greengrass.javasdk.model.InvalidSecretsManagerRequestException;
import com.amazonaws.greengrass.javasdk.model.InvocationType;
import com.amazonaws.greengrass.javasdk.model.InvokeRequest;
import com.amazonaws.greengrass.javasdk.model.InvokeResponse;
import com.amazonaws.greengrass.javasdk.model.PublishRequest;
import com.amazonaws.greengrass.javasdk.model.QueueFullPolicy;
import com.amazonaws.greengrass.javasdk.model.SecretResourceNotFoundException;
import com.amazonaws.greengrass.javasdk.model.UnauthorizedSecretsManagerRequestException;
import com.amazonaws.greengrass.javasdk.model.UpdateThingShadowRequest;
import com.amazonaws.greengrass.javasdk.model.UpdateThingShadowResult;

import java.math.BigDecimal;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Checks ggcore's Java runtime and SDK in a plain JVM, with a fake {@link HostApi} in place of the natives.
 * Exits non-zero at the first failed check, saying what failed.
 */
public final class RuntimeTest {
    private static int checks;
    private static String section = "";

    public static void main(String[] args) throws Exception {
        Fake fake = new Fake();
        Host.api = fake;
        try {
            json();
            binding(fake);
            startFailures();
            failures();
            context(fake);
            sdk(fake);
        } catch (Throwable t) {
            System.err.println("FAIL [" + section + "] unexpected " + t);
            t.printStackTrace();
            System.exit(1);
        }
        System.out.println("ok: " + checks + " checks passed");
    }

    // ---------------------------------------------------------------- helpers

    private static void check(boolean ok, String what) {
        checks++;
        if (!ok) {
            System.err.println("FAIL [" + section + "] " + what);
            System.exit(1);
        }
    }

    private static void eq(Object expected, Object actual, String what) {
        boolean same = expected == null ? actual == null : expected.equals(actual);
        check(same, what + ": expected <" + expected + "> but got <" + actual + ">");
    }

    private static byte[] utf8(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    private static String text(byte[] b) {
        return new String(b, StandardCharsets.UTF_8);
    }

    private interface Body {
        void run() throws Exception;
    }

    /** Runs body and returns what it threw (failing the check if it threw nothing or the wrong type). */
    private static <T extends Throwable> T throwsA(Class<T> type, String what, Body body) {
        try {
            body.run();
        } catch (Throwable t) {
            check(type.isInstance(t), what + ": expected " + type.getName() + " but got " + t);
            return type.cast(t);
        }
        check(false, what + ": expected " + type.getName() + " but nothing was thrown");
        return null;
    }

    private static String spec(String handler) {
        Map<String, Object> s = new LinkedHashMap<String, Object>();
        s.put("functionArn", "arn:aws:lambda:eu-west-1:123456789012:function:javaFn:7");
        s.put("handler", handler);
        s.put("codeDir", "/tmp/code");
        s.put("encoding", "json");
        s.put("memoryLimitMb", 128);
        s.put("timeoutMs", 3000);
        s.put("pinned", false);
        s.put("runtime", "java8");
        return Json.write(s);
    }

    private static Outcome run(String handler, String event) {
        Runtime.start(spec(handler));
        return call(event);
    }

    private static Outcome call(String event) {
        return Runtime.invoke(utf8(event), "inv-1", "", System.currentTimeMillis() + 5000, false);
    }

    private static String ok(String handler, String event) {
        Outcome o = run(handler, event);
        check(!o.failed, handler + " with " + event + " failed: " + text(o.payload));
        return text(o.payload);
    }

    private static Map<?, ?> failed(String handler, String event) {
        Outcome o = run(handler, event);
        check(o.failed, handler + " with " + event + " should fail but gave " + text(o.payload));
        Object doc = Json.parse(o.payload);
        check(doc instanceof Map, "error document is an object: " + text(o.payload));
        return (Map<?, ?>) doc;
    }

    // ---------------------------------------------------------------- JSON

    private static void json() {
        section = "json";
        Object v = Json.parse("{\"a\":1,\"b\":[true,false,null],\"c\":\"x\\u00e9\\ud83d\\ude00\\n\",\"d\":{}}");
        check(v instanceof LinkedHashMap, "object is a LinkedHashMap");
        Map<?, ?> m = (Map<?, ?>) v;
        eq(Arrays.asList("a", "b", "c", "d"), new ArrayList<Object>(m.keySet()), "key order kept");
        eq(1, m.get("a"), "small integer");
        check(m.get("b") instanceof ArrayList, "array is an ArrayList");
        eq(Arrays.asList(true, false, null), m.get("b"), "literals");
        eq("x\u00e9\ud83d\ude00\n", m.get("c"), "escapes and surrogate pair");
        eq("{\"a\":1,\"b\":[true,false,null],\"c\":\"x\u00e9\ud83d\ude00\\n\",\"d\":{}}", Json.write(v), "round trip");

        eq(Integer.valueOf(-2147483648), Json.parse("-2147483648"), "int min");
        eq(Long.valueOf(2147483648L), Json.parse("2147483648"), "long");
        eq(Long.valueOf(Long.MAX_VALUE), Json.parse("9223372036854775807"), "long max");
        eq(new BigDecimal("9223372036854775808"), Json.parse("9223372036854775808"), "beyond long");
        eq(Double.valueOf(1.5), Json.parse("1.5"), "double");
        eq(Double.valueOf(0.1), Json.parse("0.1"), "0.1 is a double");
        eq(Double.valueOf(-2.5e-3), Json.parse("-2.5E-3"), "exponent");
        eq(Double.valueOf(100.0), Json.parse("1e2"), "1e2");
        eq(new BigDecimal("3.14159265358979323846264338"), Json.parse("3.14159265358979323846264338"), "precise");
        eq(new BigDecimal("1e400"), Json.parse("1e400"), "too large for double");
        eq("", Json.parse("\"\""), "empty string");
        eq("a/b\"\\\b\f\r\t", Json.parse("\"a\\/b\\\"\\\\\\b\\f\\r\\t\""), "all escapes");
        eq(Arrays.asList(), Json.parse(" [ ] "), "empty array with spaces");
        eq("x", Json.parse(utf8("\uFEFF\"x\"")), "BOM skipped");
        eq("\u00e9", Json.parse(new byte[] {'"', (byte) 0xc3, (byte) 0xa9, '"'}), "UTF-8 bytes");

        String[] bad = {"", " ", "[1,]", "{\"a\":1,}", "01", "-", "+1", "1.", ".5", "1e", "1e+", "NaN", "'x'",
            "{a:1}", "[1 2]", "{\"a\" 1}", "\"\\x\"", "\"\\u12\"", "\"\\u12G4\"", "\"\\ud800\"", "\"\\udc00\"",
            "\"\\ud800\\u0041\"", "\"a\tb\"", "\"abc", "[", "{", "tru", "nul", "1 2", "[1]]", "{\"a\":1}}",
            "\u00a01", "[\"a\",]", "\"\u0000\""};
        for (final String b : bad) {
            Json.JsonException e = throwsA(Json.JsonException.class, "rejects " + Json.quote(b), new Body() {
                @Override
                public void run() {
                    Json.parse(b);
                }
            });
            check(e.getMessage().startsWith("invalid JSON"), "error message says invalid JSON: " + e.getMessage());
        }
        Json.JsonException e = throwsA(Json.JsonException.class, "bad UTF-8", new Body() {
            @Override
            public void run() {
                Json.parse(new byte[] {'"', (byte) 0xc3, '"'});
            }
        });
        check(e.getMessage().contains("UTF-8"), "UTF-8 error says so: " + e.getMessage());
        e = throwsA(Json.JsonException.class, "offset in message", new Body() {
            @Override
            public void run() {
                Json.parse("{\"a\": [1, 2,, 3]}");
            }
        });
        check(e.getMessage().contains("offset 12"), "message has the offset: " + e.getMessage());
        final StringBuilder deep = new StringBuilder();
        for (int i = 0; i < 10000; i++) {
            deep.append('[');
        }
        e = throwsA(Json.JsonException.class, "deep nesting", new Body() {
            @Override
            public void run() {
                Json.parse(deep.toString());
            }
        });
        check(e.getMessage().contains("nested"), "deep nesting message: " + e.getMessage());

        // Writer
        eq("\"\\u0000\\u001f\\n\\\"\\\\\\u2028\\ud800x\"", Json.write("\u0000\u001f\n\"\\\u2028\ud800x"), "escaping");
        eq("[null,null,1.5,2,3,\"c\",\"A\"]",
                Json.write(new Object[] {Double.NaN, Float.POSITIVE_INFINITY, 1.5, 2L, (short) 3, 'c', Kind.A}),
                "numbers, chars, enums");
        eq("[1,2]", Json.write(new int[] {1, 2}), "primitive array");
        eq("\"AQI=\"", Json.write(new byte[] {1, 2}), "nested bytes are base64");
        eq("{\"1\":true}", Json.write(java.util.Collections.singletonMap(1, true)), "map keys as text");
        final List<Object> self = new ArrayList<Object>();
        self.add(self);
        throwsA(IllegalArgumentException.class, "cycle", new Body() {
            @Override
            public void run() {
                Json.write(self);
            }
        });
        List<Object> twice = new ArrayList<Object>();
        List<Object> shared = Arrays.<Object>asList(1);
        twice.add(shared);
        twice.add(shared);
        eq("[[1],[1]]", Json.write(twice), "shared (not cyclic) values are written twice");
        eq("{\"x\":1,\"empty\":false,\"url\":\"u\"}", Json.write(new Bean()), "bean: field then getters by name");
        String roundTrip = "{\"k\":[1,-0.5,\"\\u0001\",{\"z\":null}],\"u\":\"\ud83d\ude00\"}";
        eq(roundTrip, Json.write(Json.parse(roundTrip)), "round trip 2");
        eq(roundTrip, text(Json.writeBytes(Json.parse(utf8(roundTrip)))), "byte round trip");
    }

    enum Kind { A }

    public static class Bean {
        public int x = 1;

        public boolean isEmpty() {
            return false;
        }

        public String getURL() {
            return "u";
        }

        public static String getStatic() {
            return "no";
        }
    }

    // ---------------------------------------------------------------- binding

    private static void binding(Fake fake) {
        section = "binding";
        int before = example.Handlers.constructed;
        Runtime.start(spec("example.Handlers$Echo"));
        eq(before + 1, example.Handlers.constructed, "constructor runs once at start");
        eq("got:hello", text(call("hello").payload), "String input is the raw text");
        eq("got:\"quoted\"", text(call("\"quoted\"").payload), "String input is not JSON-decoded");
        eq("got:", text(call("").payload), "empty event as String");
        eq(before + 1, example.Handlers.constructed, "no constructor per invoke");

        eq("{\"keys\":2,\"inputClass\":\"java.util.LinkedHashMap\",\"echo\":{\"a\":1,\"b\":[1,2]}}",
                ok("example.Handlers$Maps", "{\"a\":1,\"b\":[1,2]}"), "Map in and out");
        eq("[1,\"x\",{\"y\":null}]", ok("example.Handlers$Raw", "[1,\"x\",{\"y\":null}]"), "raw handler gets JSON");
        eq("text", ok("example.Handlers$Raw", "\"text\""), "raw handler: a JSON string in, a String out is raw text");
        eq("", ok("example.Handlers$Raw", ""), "empty event binds null, null result is empty");

        String order = "{\"id\":\"o1\",\"Qty\":3,\"items\":[{\"name\":\"a\",\"price\":1.5},{\"name\":\"b\",\"price\":2}],"
                + "\"byName\":{\"b\":{\"price\":4}},\"extra\":[{\"name\":\"e\"}],\"address\":{\"city\":\"Oslo\","
                + "\"zips\":[1,2]},\"rush\":true,\"big\":12345678901,\"unknown\":{\"ignored\":1}}";
        eq("{\"names\":[\"a\",\"b\",\"3.5\"],\"paid\":true,\"summary\":\"o1 x3 rush=true big=12345678901 city=Oslo"
                + " zips=[1, 2] byName=4.0 extra=1:e\"}", ok("example.Handlers$Orders", order), "POJO in and out");
        eq("w@2.5", ok("example.Handlers$Concrete", "{\"name\":\"w\",\"price\":2.5}"),
                "type argument from a generic base class");
        eq("a;b;", ok("example.Handlers$Methods::items", "[{\"name\":\"a\"},{\"name\":\"b\"}]"), "List<Item> method");

        eq("HELLO", ok("example.Handlers$Streams", "hello"), "RequestStreamHandler");
        int staticCalls = example.Handlers.Methods.staticCalls;
        eq("cba", ok("example.Handlers$Methods::reverse", "abc"), "static byte[] method");
        eq(staticCalls + 1, example.Handlers.Methods.staticCalls, "static method called");
        eq("xy!", ok("example.Handlers$Methods::buffer", "xy"), "ByteBuffer in and out");
        eq("42", ok("example.Handlers$Methods::twice", "21"), "Integer in, int out as JSON");
        eq("42", ok("example.Handlers$Methods::twice", "\"21\""), "number from text");
        eq("8", ok("example.Handlers$Methods::primitive", "7"), "primitive long");
        eq("", ok("example.Handlers$Methods::nothing", "x"), "void method gives empty");
        eq("read 3", ok("example.Handlers$Methods::stream", "abc"), "InputStream as (I)");
        eq("copy:abc", ok("example.Handlers$Methods::copy", "abc"), "(InputStream, OutputStream)");
        eq("inv-1", ok("example.Handlers$Methods::copyCtx", "abc"), "(InputStream, OutputStream, Context)");
        eq("context", ok("example.Handlers$Overloads::handle", "x"), "overloads: Context wins");
        eq("streams", ok("example.Handlers$OverloadsNoContext::handle", "x"), "overloads: streams next");
        eq("streams+context", ok("example.Handlers$OverloadsAll::handle", "x"), "overloads: streams with Context");
        eq("got:x", ok("example.Handlers$Echo::handleRequest", "x"), "interface method named explicitly");

        eq("String:plain text", ok("example.Handlers$Methods::anything", "plain text"), "Object: text that is not JSON stays text");
        eq("LinkedHashMap:{a=1}", ok("example.Handlers$Methods::anything", "{\"a\": 1}"), "Object: JSON is parsed");

        Map<?, ?> doc = failed("example.Handlers$Methods::twice", "not json");
        eq("com.ggcore.runtime.InputException", doc.get("errorType"), "invalid JSON is an input failure");
        check(String.valueOf(doc.get("errorMessage")).contains("java.lang.Integer"),
                "input failure names the type: " + doc.get("errorMessage"));
        doc = failed("example.Handlers$Orders", "{\"id\":\"o\",\"qty\":\"many\"}");
        eq("com.ggcore.runtime.InputException", doc.get("errorType"), "wrong shape is an input failure");
        check(String.valueOf(doc.get("errorMessage")).contains("$.qty"), "names the path: " + doc.get("errorMessage"));
        doc = failed("example.Handlers$Methods::primitive", "");
        eq("com.ggcore.runtime.InputException", doc.get("errorType"), "empty event for a primitive");
        doc = failed("example.Handlers$Methods::twice", "4294967296");
        eq("com.ggcore.runtime.InputException", doc.get("errorType"), "overflow");

        // Conversions directly
        eq(Arrays.asList(1L, 2L), Convert.to(Json.parse("[1,2]"), new java.lang.reflect.ParameterizedType() {
            @Override
            public java.lang.reflect.Type[] getActualTypeArguments() {
                return new java.lang.reflect.Type[] {Long.class};
            }

            @Override
            public java.lang.reflect.Type getRawType() {
                return List.class;
            }

            @Override
            public java.lang.reflect.Type getOwnerType() {
                return null;
            }
        }), "List<Long>");
        check(Arrays.equals(new int[] {1, 2}, (int[]) Convert.to(Json.parse("[1,2]"), int[].class)), "int[]");
        eq(Kind.A, Convert.to("A", Kind.class), "enum by name");
        check(Arrays.equals(new byte[] {1, 2}, (byte[]) Convert.to("AQI=", byte[].class)), "nested bytes from base64");
    }

    // ---------------------------------------------------------------- start failures

    private static String startError(final String handler) {
        IllegalArgumentException e = throwsA(IllegalArgumentException.class, "start " + handler, new Body() {
            @Override
            public void run() {
                Runtime.start(spec(handler));
            }
        });
        return e.getMessage();
    }

    private static void startFailures() {
        section = "start";
        String m = startError("com.example.Missing");
        check(m.contains("class com.example.Missing not found in the code directory /tmp/code"), m);
        m = startError("example.Handlers$Methods::absent");
        check(m.contains("no public method absent(") && m.contains("example.Handlers$Methods"), m);
        m = startError("example.Handlers$CtorThrows");
        check(m.contains("constructor of example.Handlers$CtorThrows threw java.lang.IllegalArgumentException: no config"),
                m);
        m = startError("example.StaticInitFails");
        check(m.contains("static initialiser of example.StaticInitFails threw java.lang.IllegalStateException: static boom"),
                m);
        m = startError("example.Handlers$NoDefaultCtor::handle");
        check(m.contains("no public no-argument constructor"), m);
        m = startError("example.Handlers$NotAHandler");
        check(m.contains("implements neither") && m.contains("example.Handlers$NotAHandler::method"), m);
        m = startError("");
        check(m.contains("handler is empty"), m);
        m = startError("::x");
        check(m.contains("is not package.Class::method"), m);
        IllegalArgumentException e = throwsA(IllegalArgumentException.class, "spec not JSON", new Body() {
            @Override
            public void run() {
                Runtime.start("{");
            }
        });
        check(e.getMessage().contains("spec is not JSON"), e.getMessage());
    }

    // ---------------------------------------------------------------- failure outcomes

    private static void failures() {
        section = "failures";
        Map<?, ?> doc = failed("example.Handlers$Methods::fail", "x");
        eq("boom: x", doc.get("errorMessage"), "message");
        eq("java.lang.IllegalStateException", doc.get("errorType"), "type");
        List<?> trace = (List<?>) doc.get("stackTrace");
        check(!trace.isEmpty() && String.valueOf(trace.get(0)).startsWith("at example.Handlers$Methods.fail("),
                "trace starts at the handler: " + trace);
        for (Object frame : trace) {
            check(!String.valueOf(frame).contains("com.ggcore.runtime") && !String.valueOf(frame).contains("reflect"),
                    "runtime frames left out: " + trace);
        }
        doc = failed("example.Handlers$Methods::oom", "x");
        eq("java.lang.OutOfMemoryError", doc.get("errorType"), "OOM type");
        eq("Java heap space", doc.get("errorMessage"), "OOM message");
        doc = failed("example.Handlers$Methods::npe", "x");
        eq("java.lang.NullPointerException", doc.get("errorType"), "NPE type");
        check(doc.get("errorMessage") instanceof String, "NPE message is text");
        doc = failed("example.Handlers$Methods::unserialisable", "x");
        eq("java.lang.IllegalArgumentException", doc.get("errorType"), "an unwritable result fails");
        Runtime.start(spec("example.Handlers$Echo"));
        Outcome o = Runtime.invoke(null, null, null, 0, true);
        check(!o.failed, "null event, event invocation");
        eq("got:", text(o.payload), "null event is empty");
    }

    // ---------------------------------------------------------------- context

    private static void context(Fake fake) {
        section = "context";
        Runtime.start(spec("example.Handlers$Methods::context"));
        fake.calls.clear();
        String cc = "{\"custom\":{\"s\":\"v\",\"n\":5,\"o\":{\"a\":true}},\"client\":{\"app_title\":\"T\","
                + "\"installation_id\":\"I\"},\"env\":{\"platform\":\"linux\"}}";
        Outcome o = Runtime.invoke(utf8("{}"), "req-9", cc, System.currentTimeMillis() + 2000, false);
        check(!o.failed, "context handler: " + text(o.payload));
        Map<?, ?> m = (Map<?, ?>) Json.parse(o.payload);
        eq("req-9", m.get("requestId"), "request id");
        eq("javaFn", m.get("functionName"), "function name");
        eq("7", m.get("functionVersion"), "function version");
        eq("arn:aws:lambda:eu-west-1:123456789012:function:javaFn:7", m.get("arn"), "arn");
        eq("/aws/greengrass/Lambda/eu-west-1/123456789012/javaFn", m.get("logGroup"), "log group");
        eq("ggcore", m.get("logStream"), "log stream");
        eq(128, m.get("memory"), "memory");
        int remaining = ((Number) m.get("remaining")).intValue();
        check(remaining > 1000 && remaining <= 2000, "remaining time " + remaining);
        eq(null, m.get("identityId"), "identity id");
        Map<String, Object> custom = new LinkedHashMap<String, Object>();
        custom.put("s", "v");
        custom.put("n", "5");
        custom.put("o", "{\"a\":true}");
        eq(custom, m.get("custom"), "custom values as text");
        eq(java.util.Collections.singletonMap("platform", "linux"), m.get("env"), "env");
        eq("T", m.get("appTitle"), "client app title");
        eq("I", m.get("installationId"), "client installation id");
        eq(Arrays.asList("log 1 logged req-9", "log 1 bytes"), fake.calls, "LambdaLogger goes to Host.log at INFO");

        o = Runtime.invoke(utf8("{}"), "req-10", "", System.currentTimeMillis() - 10, false);
        m = (Map<?, ?>) Json.parse(o.payload);
        check(m.containsKey("clientContext") && m.get("clientContext") == null, "no client context is null");
        eq(0, m.get("remaining"), "past deadline is 0");
        o = Runtime.invoke(utf8("{}"), "req-11", "{\"Custom\":{\"k\":\"v\"}}", 0, false);
        m = (Map<?, ?>) Json.parse(o.payload);
        eq(java.util.Collections.singletonMap("k", "v"), m.get("custom"), "Custom spelled with a capital");
        eq(3000, m.get("remaining"), "no deadline: the timeout");

        LambdaContext c = new LambdaContext("arn:aws:lambda:r:a:function:noVersion", 1, 0, "x", "not json", 0);
        eq("noVersion", c.getFunctionName(), "name without version");
        eq("$LATEST", c.getFunctionVersion(), "$LATEST without version");
        check(c.getClientContext() != null && c.getClientContext().getCustom().isEmpty(),
                "invalid client context gives empty maps");
    }

    // ---------------------------------------------------------------- SDK

    private static void sdk(final Fake fake) throws Exception {
        section = "sdk";
        final IotDataClient iot = GreengrassClientBuilder.iotDataClient().build();
        fake.calls.clear();
        iot.publish(new PublishRequest().withTopic("t/1").withPayload(ByteBuffer.wrap(utf8("hi"))));
        iot.publish(new PublishRequest().withTopic("t/2").withPayload(ByteBuffer.wrap(utf8("a")))
                .withQueueFullPolicy(QueueFullPolicy.AllOrException));
        iot.publish(new PublishRequest().withTopic("t/3").withPayload(ByteBuffer.wrap(utf8("b")))
                .withQueueFullPolicy(QueueFullPolicy.BestEffort));
        ByteBuffer unflipped = ByteBuffer.allocate(3); // filled, not flipped
        unflipped.put(utf8("put"));
        iot.publish(new PublishRequest().withTopic("t/4").withPayload(unflipped));
        eq(Arrays.asList("publish t/1 hi ", "publish t/2 a AllOrError", "publish t/3 b BestEffort", "publish t/4 put "),
                fake.calls, "publish arguments");
        eq("AllOrError", QueueFullPolicy.AllOrException.toString(), "wire name");

        fake.calls.clear();
        fake.shadowAnswer = utf8("{\"state\":{}}");
        GetThingShadowResult g = iot.getThingShadow(new GetThingShadowRequest().withThingName("dev1"));
        eq("{\"state\":{}}", text(com.ggcore.runtime.Bytes.of(g.getPayload())), "shadow get payload");
        UpdateThingShadowResult u = iot.updateThingShadow(new UpdateThingShadowRequest().withThingName("dev1")
                .withPayload(ByteBuffer.wrap(utf8("{\"state\":{\"reported\":{\"x\":1}}}"))));
        check(u.getPayload() != null, "update result");
        iot.deleteThingShadow(new DeleteThingShadowRequest().withThingName("dev1"));
        eq(Arrays.asList("shadow get dev1 ", "shadow update dev1 {\"state\":{\"reported\":{\"x\":1}}}",
                "shadow delete dev1 "), fake.calls, "shadow arguments");

        throwsA(InvalidIotDataRequestException.class, "publish without topic", new Body() {
            @Override
            public void run() throws Exception {
                iot.publish(new PublishRequest().withPayload(ByteBuffer.wrap(new byte[0])));
            }
        });
        throwsA(InvalidIotDataRequestException.class, "update without payload", new Body() {
            @Override
            public void run() throws Exception {
                iot.updateThingShadow(new UpdateThingShadowRequest().withThingName("x"));
            }
        });
        String[][] iotCodes = {{"BadRequest", "Invalid"}, {"TooLarge", "Invalid"}, {"NotFound", "GG"}, {"Full", "GG"},
            {"Refused", "GG"}, {"Unavailable", "GG"}, {"Internal", "GG"}};
        for (final String[] code : iotCodes) {
            fake.fail = new HostException(code[0], "nope");
            GGIotDataException e = throwsA(GGIotDataException.class, "publish " + code[0], new Body() {
                @Override
                public void run() throws Exception {
                    iot.publish(new PublishRequest().withTopic("t").withPayload(ByteBuffer.wrap(new byte[0])));
                }
            });
            eq(code[1].equals("Invalid"), e instanceof InvalidIotDataRequestException, "publish " + code[0] + " class");
            eq(code[0] + ": nope", e.getMessage(), "message");
            fake.fail = new HostException(code[0], "nope");
            e = throwsA(GGIotDataException.class, "shadow " + code[0], new Body() {
                @Override
                public void run() throws Exception {
                    iot.getThingShadow(new GetThingShadowRequest().withThingName("x"));
                }
            });
            eq(code[1].equals("Invalid"), e instanceof InvalidIotDataRequestException, "shadow " + code[0] + " class");
        }
        fake.fail = null;

        final LambdaClient lambda = GreengrassClientBuilder.lambdaClient().build();
        fake.calls.clear();
        final String ccText = Base64.getEncoder().encodeToString(utf8("{\"custom\":{\"a\":\"b\"}}"));
        fake.invokeAnswer = new Object[] {"id-1", "", utf8("result")};
        InvokeResponse r = lambda.invoke(new InvokeRequest().withFunctionArn("arn:f").withQualifier("3")
                .withClientContext(ccText).withPayload(ByteBuffer.wrap(utf8("in"))));
        eq("result", text(com.ggcore.runtime.Bytes.of(r.getPayload())), "invoke payload");
        eq("", r.getFunctionError(), "no function error");
        eq(200, r.getStatusCode(), "status");
        fake.invokeAnswer = new Object[] {"id-2", "Unhandled", utf8("{\"errorMessage\":\"x\"}")};
        r = lambda.invoke(new InvokeRequest().withFunctionArn("arn:g").withInvocationType(InvocationType.Event)
                .withPayload("text"));
        eq("Unhandled", r.getFunctionError(), "function error kept");
        eq("Unhandled", r.getFunctionErr(), "published getter name");
        eq("{\"errorMessage\":\"x\"}", text(com.ggcore.runtime.Bytes.of(r.getPayload())), "error payload kept");
        eq(202, r.getStatusCode(), "event status");
        eq("id-2", r.getInvocationId(), "invocation id");
        eq(Arrays.asList("invoke arn:f 3 false " + ccText + " in", "invoke arn:g  true  text"), fake.calls,
                "invoke arguments");
        throwsA(InvalidLambdaRequestException.class, "invoke without ARN", new Body() {
            @Override
            public void run() throws Exception {
                lambda.invoke(new InvokeRequest());
            }
        });
        throwsA(InvalidLambdaRequestException.class, "bad base64 client context", new Body() {
            @Override
            public void run() throws Exception {
                lambda.invoke(new InvokeRequest().withFunctionArn("arn:f").withClientContext("!!!"));
            }
        });
        for (final String[] code : iotCodes) {
            fake.fail = new HostException(code[0], "no");
            GGLambdaException e = throwsA(GGLambdaException.class, "invoke " + code[0], new Body() {
                @Override
                public void run() throws Exception {
                    lambda.invoke(new InvokeRequest().withFunctionArn("arn:f"));
                }
            });
            eq(code[1].equals("Invalid"), e instanceof InvalidLambdaRequestException, "invoke " + code[0] + " class");
            eq(code[0] + ": no", e.getMessage(), "message");
        }
        fake.fail = null;

        final SecretsManagerClient secrets = GreengrassClientBuilder.secretsManagerClient().build();
        fake.calls.clear();
        fake.secretAnswer = utf8("{\"ARN\":\"arn:s\",\"Name\":\"s\",\"VersionId\":\"v1\",\"SecretString\":\"shh\","
                + "\"SecretBinary\":\"AQI=\",\"VersionStages\":[\"AWSCURRENT\"],\"CreatedDate\":1500000000000}");
        GetSecretValueResult s = secrets.getSecretValue(new GetSecretValueRequest().withSecretId("s")
                .withVersionStage("AWSCURRENT"));
        eq("arn:s", s.getARN(), "ARN");
        eq("s", s.getName(), "name");
        eq("v1", s.getVersionId(), "version id");
        eq("shh", s.getSecretString(), "secret string");
        check(Arrays.equals(new byte[] {1, 2}, com.ggcore.runtime.Bytes.of(s.getSecretBinary())), "secret binary");
        eq(Arrays.asList("AWSCURRENT"), s.getVersionStages(), "stages");
        eq(1500000000000L, s.getCreatedDate().getTime(), "created date (epoch ms)");
        secrets.getSecretValue(new GetSecretValueRequest().withSecretId("t").withVersionId("v9"));
        eq(Arrays.asList("secret {\"SecretId\":\"s\",\"VersionStage\":\"AWSCURRENT\"}",
                "secret {\"SecretId\":\"t\",\"VersionId\":\"v9\"}"), fake.calls, "secret request documents");
        throwsA(InvalidSecretsManagerRequestException.class, "no secret id", new Body() {
            @Override
            public void run() throws Exception {
                secrets.getSecretValue(new GetSecretValueRequest());
            }
        });
        String[][] secretCodes = {{"BadRequest", "InvalidSecretsManagerRequestException"},
            {"TooLarge", "InvalidSecretsManagerRequestException"}, {"NotFound", "SecretResourceNotFoundException"},
            {"Refused", "UnauthorizedSecretsManagerRequestException"}, {"Unavailable", "GGSecretsManagerException"},
            {"Internal", "GGSecretsManagerException"}, {"Full", "GGSecretsManagerException"}};
        for (final String[] code : secretCodes) {
            fake.fail = new HostException(code[0], "sec");
            GGSecretsManagerException e = throwsA(GGSecretsManagerException.class, "secret " + code[0], new Body() {
                @Override
                public void run() throws Exception {
                    secrets.getSecretValue(new GetSecretValueRequest().withSecretId("s"));
                }
            });
            eq(code[1], e.getClass().getSimpleName(), "secret " + code[0] + " class");
            eq(code[0] + ": sec", e.getMessage(), "message");
        }
        fake.fail = null;
        fake.secretAnswer = utf8("{\"Status\":404,\"Message\":\"no such secret\"}");
        SecretResourceNotFoundException nf = throwsA(SecretResourceNotFoundException.class, "status 404", new Body() {
            @Override
            public void run() throws Exception {
                secrets.getSecretValue(new GetSecretValueRequest().withSecretId("s"));
            }
        });
        check(nf.getMessage().contains("no such secret"), nf.getMessage());
        fake.secretAnswer = utf8("{\"Status\":403,\"Message\":\"denied\"}");
        throwsA(UnauthorizedSecretsManagerRequestException.class, "status 403", new Body() {
            @Override
            public void run() throws Exception {
                secrets.getSecretValue(new GetSecretValueRequest().withSecretId("s"));
            }
        });

        // A handler using the SDK through the runtime: the HostException reaches it as the SDK's exception.
        fake.fail = new HostException("Full", "queue full");
        Outcome o = run("example.SdkHandler::handle", "x");
        check(!o.failed, "SDK handler ran: " + text(o.payload));
        eq("caught GGIotDataException: Full: queue full", text(o.payload), "SDK exception inside a handler");
        fake.fail = null;
        o = run("example.SdkHandler::handle", "x");
        eq("published", text(o.payload), "SDK publish inside a handler");
    }

    /** Records each call as one line and answers with what the test set. */
    static final class Fake implements HostApi {
        final List<String> calls = new ArrayList<String>();
        HostException fail;
        byte[] shadowAnswer = new byte[0];
        byte[] secretAnswer = utf8("{}");
        Object[] invokeAnswer = {"id", "", new byte[0]};

        private void maybeFail() {
            HostException f = fail;
            if (f != null) {
                throw f;
            }
        }

        @Override
        public void publish(String topic, byte[] payload, String queueFullPolicy) {
            maybeFail();
            calls.add("publish " + topic + " " + text(payload) + " " + queueFullPolicy);
        }

        @Override
        public Object[] invoke(String functionArn, String qualifier, boolean event, String clientContextBase64,
                byte[] payload) {
            maybeFail();
            calls.add("invoke " + functionArn + " " + qualifier + " " + event + " " + clientContextBase64 + " "
                    + text(payload));
            return invokeAnswer;
        }

        @Override
        public byte[] shadow(String operation, String thing, byte[] payload) {
            maybeFail();
            calls.add("shadow " + operation + " " + thing + " " + text(payload));
            return shadowAnswer;
        }

        @Override
        public byte[] secret(byte[] requestJson) {
            maybeFail();
            calls.add("secret " + text(requestJson));
            return secretAnswer;
        }

        @Override
        public void log(int level, String line) {
            calls.add("log " + level + " " + line);
        }
    }
}

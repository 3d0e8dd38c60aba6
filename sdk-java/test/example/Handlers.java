package example;

import com.amazonaws.services.lambda.runtime.ClientContext;
import com.amazonaws.services.lambda.runtime.Context;
import com.amazonaws.services.lambda.runtime.RequestHandler;
import com.amazonaws.services.lambda.runtime.RequestStreamHandler;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** Handlers the runtime test loads by name, as a function's code would be. */
public final class Handlers {
    private Handlers() {
    }

    public static int constructed;

    public static class Echo implements RequestHandler<String, String> {
        public Echo() {
            constructed++;
        }

        @Override
        public String handleRequest(String input, Context context) {
            return "got:" + input;
        }
    }

    public static class Maps implements RequestHandler<Map<String, Object>, Map<String, Object>> {
        @Override
        public Map<String, Object> handleRequest(Map<String, Object> input, Context context) {
            Map<String, Object> out = new LinkedHashMap<String, Object>();
            out.put("keys", input.size());
            out.put("inputClass", input.getClass().getName());
            out.put("echo", input);
            return out;
        }
    }

    @SuppressWarnings("rawtypes")
    public static class Raw implements RequestHandler {
        @Override
        public Object handleRequest(Object input, Context context) {
            return input;
        }
    }

    public static class Item {
        private String name;
        public double price;

        public String getName() {
            return name;
        }

        public void setName(String name) {
            this.name = name;
        }
    }

    public static class Address {
        public String city;
        public List<Integer> zips;
    }

    public static class Order {
        private String id;
        private int qty;
        private List<Item> items;
        public Map<String, Item> byName;
        public Item[] extra;
        private Address address;
        public boolean rush;
        public Long big;

        public String getId() {
            return id;
        }

        public void setId(String id) {
            this.id = id;
        }

        public int getQty() {
            return qty;
        }

        public void setQty(int qty) {
            this.qty = qty;
        }

        public List<Item> getItems() {
            return items;
        }

        public void setItems(List<Item> items) {
            this.items = items;
        }

        public Address getAddress() {
            return address;
        }

        public void setAddress(Address address) {
            this.address = address;
        }
    }

    public static class Receipt {
        private final String summary;
        public List<String> names = new ArrayList<String>();

        public Receipt(String summary) {
            this.summary = summary;
        }

        public String getSummary() {
            return summary;
        }

        public boolean isPaid() {
            return true;
        }
    }

    public static class Orders implements RequestHandler<Order, Receipt> {
        @Override
        public Receipt handleRequest(Order o, Context context) {
            double total = 0;
            Receipt r = new Receipt(o.getId() + " x" + o.getQty() + " rush=" + o.rush + " big=" + o.big + " city="
                    + o.getAddress().city + " zips=" + o.getAddress().zips + " byName=" + o.byName.get("b").price
                    + " extra=" + o.extra.length + ":" + o.extra[0].getName());
            for (Item i : o.getItems()) {
                r.names.add(i.getName());
                total += i.price;
            }
            r.names.add(String.valueOf(total));
            return r;
        }
    }

    /** A generic base: the event type comes from the subclass's type argument. */
    public abstract static class Base<T> implements RequestHandler<T, String> {
        @Override
        public String handleRequest(T input, Context context) {
            return describe(input);
        }

        protected abstract String describe(T input);
    }

    public static class Concrete extends Base<Item> {
        @Override
        protected String describe(Item input) {
            return input.getName() + "@" + input.price;
        }
    }

    public static class Streams implements RequestStreamHandler {
        @Override
        public void handleRequest(InputStream input, OutputStream output, Context context) throws IOException {
            int b;
            while ((b = input.read()) != -1) {
                output.write(Character.toUpperCase((char) b));
            }
        }
    }

    public static class Methods {
        public static int staticCalls;

        /** What an Object parameter receives: its class and value. */
        public String anything(Object in) {
            return (in == null ? "null" : in.getClass().getSimpleName()) + ":" + in;
        }

        public static byte[] reverse(byte[] in) {
            staticCalls++;
            byte[] out = new byte[in.length];
            for (int i = 0; i < in.length; i++) {
                out[i] = in[in.length - 1 - i];
            }
            return out;
        }

        public ByteBuffer buffer(ByteBuffer in, Context context) {
            ByteBuffer out = ByteBuffer.allocate(in.remaining() + 1);
            out.put(in);
            out.put((byte) '!');
            out.flip();
            return out;
        }

        public int twice(Integer x) {
            return x * 2;
        }

        public long primitive(long x) {
            return x + 1;
        }

        public void nothing(String s, Context c) {
        }

        public String stream(InputStream in) throws IOException {
            return "read " + in.available();
        }

        public void copy(InputStream in, OutputStream out) throws IOException {
            out.write("copy:".getBytes(StandardCharsets.UTF_8));
            int b;
            while ((b = in.read()) != -1) {
                out.write(b);
            }
        }

        public void copyCtx(InputStream in, OutputStream out, Context c) throws IOException {
            out.write(c.getAwsRequestId().getBytes(StandardCharsets.UTF_8));
        }

        public Map<String, Object> context(Object input, Context c) {
            Map<String, Object> m = new LinkedHashMap<String, Object>();
            m.put("requestId", c.getAwsRequestId());
            m.put("functionName", c.getFunctionName());
            m.put("functionVersion", c.getFunctionVersion());
            m.put("arn", c.getInvokedFunctionArn());
            m.put("logGroup", c.getLogGroupName());
            m.put("logStream", c.getLogStreamName());
            m.put("memory", c.getMemoryLimitInMB());
            m.put("remaining", c.getRemainingTimeInMillis());
            m.put("identityId", c.getIdentity().getIdentityId());
            ClientContext cc = c.getClientContext();
            if (cc != null) {
                m.put("custom", cc.getCustom());
                m.put("env", cc.getEnvironment());
                m.put("appTitle", cc.getClient() == null ? null : cc.getClient().getAppTitle());
                m.put("installationId", cc.getClient() == null ? null : cc.getClient().getInstallationId());
            } else {
                m.put("clientContext", null);
            }
            c.getLogger().log("logged " + c.getAwsRequestId());
            c.getLogger().log("bytes".getBytes(StandardCharsets.UTF_8));
            return m;
        }

        public String fail(String s) {
            throw new IllegalStateException("boom: " + s);
        }

        public String oom(String s) {
            throw new OutOfMemoryError("Java heap space");
        }

        public String npe(String s) {
            Object o = null;
            return o.toString();
        }

        public Object unserialisable(String s) {
            List<Object> self = new ArrayList<Object>();
            self.add(self);
            return self;
        }

        public String items(List<Item> items, Context c) {
            StringBuilder b = new StringBuilder();
            for (Item i : items) {
                b.append(i.getName()).append(';');
            }
            return b.toString();
        }
    }

    public static class Overloads {
        public String handle(String s) {
            return "plain";
        }

        public String handle(String s, Context c) {
            return "context";
        }

        public void handle(InputStream in, OutputStream out) throws IOException {
            out.write("streams".getBytes(StandardCharsets.UTF_8));
        }
    }

    public static class OverloadsNoContext {
        public String handle(String s) {
            return "plain";
        }

        public void handle(InputStream in, OutputStream out) throws IOException {
            out.write("streams".getBytes(StandardCharsets.UTF_8));
        }
    }

    public static class OverloadsAll {
        public String handle(String s, Context c) {
            return "context";
        }

        public void handle(InputStream in, OutputStream out, Context c) throws IOException {
            out.write("streams+context".getBytes(StandardCharsets.UTF_8));
        }
    }

    public static class CtorThrows implements RequestHandler<String, String> {
        public CtorThrows() {
            throw new IllegalArgumentException("no config");
        }

        @Override
        public String handleRequest(String input, Context context) {
            return input;
        }
    }

    public static class NoDefaultCtor {
        public NoDefaultCtor(String x) {
        }

        public String handle(String s) {
            return s;
        }
    }

    public static class NotAHandler {
        public String handle(String s) {
            return s;
        }
    }
}

package com.ggcore.runtime;

import com.amazonaws.services.lambda.runtime.Context;
import com.amazonaws.services.lambda.runtime.RequestHandler;
import com.amazonaws.services.lambda.runtime.RequestStreamHandler;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.lang.reflect.Constructor;
import java.lang.reflect.GenericArrayType;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.lang.reflect.ParameterizedType;
import java.lang.reflect.Type;
import java.lang.reflect.TypeVariable;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * ggcore's Java function runtime. The plugin calls {@link #start} once when the function's JVM comes up and
 * {@link #invoke} for each request.
 *
 * <p>The handler ({@code Executable}) is {@code package.Class} (a {@link RequestHandler} or
 * {@link RequestStreamHandler}) or {@code package.Class::method}, a public method taking {@code (I)},
 * {@code (I, Context)}, {@code (InputStream, OutputStream)} or {@code (InputStream, OutputStream, Context)};
 * of several overloads the one with a Context wins, then the stream form.
 *
 * <p>The event binds to {@code I} by type: {@code byte[]}, {@code ByteBuffer} and {@code InputStream} get the
 * raw bytes; {@code String} gets them as UTF-8 text, not JSON-decoded (Greengrass events are often plain
 * text); every other type is bound from the event parsed as JSON ({@code Object} gives maps, lists, strings,
 * numbers, booleans) — an empty event binds to null. The result is returned as: nothing for null/void, raw
 * bytes for {@code byte[]}/{@code ByteBuffer}, UTF-8 for {@code String}, JSON for anything else.
 */
public final class Runtime {
    private Runtime() {
    }

    private static volatile Function function;

    /** A function started by {@link #start}. */
    private static final class Function {
        final String arn;
        final int memoryLimitMb;
        final long timeoutMs;
        final Handler handler;

        Function(String arn, int memoryLimitMb, long timeoutMs, Handler handler) {
            this.arn = arn;
            this.memoryLimitMb = memoryLimitMb;
            this.timeoutMs = timeoutMs;
            this.handler = handler;
        }
    }

    /** One way of calling the user's code. */
    private abstract static class Handler {
        abstract byte[] call(byte[] event, Context context) throws Throwable;
    }

    /**
     * Loads the handler: resolves the class (running its static initialisers) and method, and creates the
     * instance. Throws an exception whose message says what is wrong.
     */
    public static void start(String specJson) {
        Object parsed;
        try {
            parsed = Json.parse(specJson == null ? "" : specJson);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("the function spec is not JSON: " + e.getMessage());
        }
        if (!(parsed instanceof Map)) {
            throw new IllegalArgumentException("the function spec is not a JSON object");
        }
        Map<?, ?> spec = (Map<?, ?>) parsed;
        String arn = text(spec.get("functionArn"));
        String executable = text(spec.get("handler")).trim();
        String codeDir = text(spec.get("codeDir"));
        int memoryLimitMb = (int) Math.min(Integer.MAX_VALUE, number(spec.get("memoryLimitMb")));
        long timeoutMs = number(spec.get("timeoutMs"));
        Thread current = Thread.currentThread();
        if (current.getContextClassLoader() == null) {
            current.setContextClassLoader(ClassLoader.getSystemClassLoader());
        }
        Handler handler = load(executable, codeDir);
        function = new Function(arn, memoryLimitMb, timeoutMs, handler);
    }

    /** Runs the handler once; never throws. */
    /**
     * Called by the plugin when the instance stops: flushes what the function
     * wrote to System.out and System.err without a final newline. Never throws.
     */
    public static void stop() {
        try {
            System.out.flush();
            System.err.flush();
        } catch (Throwable ignored) {
            // Nothing more can be done for the streams.
        }
    }

    public static Outcome invoke(byte[] event, String invocationId, String clientContextJson, long deadlineUnixMs,
            boolean eventInvocation) {
        try {
            Function f = function;
            if (f == null) {
                return failure(new IllegalStateException("the function was not started"));
            }
            Thread current = Thread.currentThread();
            if (current.getContextClassLoader() == null) {
                current.setContextClassLoader(ClassLoader.getSystemClassLoader());
            }
            Context context = new LambdaContext(f.arn, f.memoryLimitMb, f.timeoutMs, invocationId, clientContextJson,
                    deadlineUnixMs);
            byte[] result = f.handler.call(event == null ? new byte[0] : event, context);
            return new Outcome(false, result);
        } catch (Throwable t) {
            return failure(t);
        }
    }

    // ---------------------------------------------------------------- failures

    private static final byte[] FALLBACK_ERROR = ("{\"errorMessage\":\"the handler failed and the runtime ran out of"
            + " memory describing the failure\",\"errorType\":\"java.lang.OutOfMemoryError\",\"stackTrace\":[]}")
            .getBytes(StandardCharsets.UTF_8);

    private static final Outcome FALLBACK_OUTCOME = new Outcome(true, FALLBACK_ERROR);

    static Outcome failure(Throwable t) {
        try {
            if (t instanceof InvocationTargetException && t.getCause() != null) {
                t = t.getCause();
            }
            byte[] doc = errorDocument(t);
            try {
                StringBuilder line = new StringBuilder("the handler failed: ").append(t);
                for (String frame : trace(t)) {
                    line.append("\n\t").append(frame);
                }
                log(3, line.toString());
            } catch (Throwable ignored) {
                // Logging is best effort; the outcome carries the error.
            }
            return new Outcome(true, doc);
        } catch (Throwable again) {
            return FALLBACK_OUTCOME;
        }
    }

    /** {@code {"errorMessage": ..., "errorType": ..., "stackTrace": ["at ...", ...]}} as UTF-8. */
    static byte[] errorDocument(Throwable t) {
        Map<String, Object> doc = new LinkedHashMap<String, Object>();
        String message = t.getMessage();
        doc.put("errorMessage", message != null ? message : t.getClass().getName());
        doc.put("errorType", t.getClass().getName());
        doc.put("stackTrace", trace(t));
        return Json.writeBytes(doc);
    }

    /** The stack of a failure, without the runtime's own frames below the handler. */
    static List<String> trace(Throwable t) {
        StackTraceElement[] frames = t.getStackTrace();
        int end = frames.length;
        while (end > 0 && isRuntimeFrame(frames[end - 1])) {
            end--;
        }
        if (end == 0) {
            end = frames.length; // the runtime itself failed (e.g. binding the input): keep everything
        }
        List<String> out = new ArrayList<String>(end);
        for (int i = 0; i < end; i++) {
            out.add("at " + frames[i]);
        }
        return out;
    }

    private static boolean isRuntimeFrame(StackTraceElement frame) {
        String c = frame.getClassName();
        return c.startsWith("com.ggcore.runtime.") || c.startsWith("sun.reflect.") || c.startsWith("jdk.internal.reflect.")
                || c.startsWith("java.lang.reflect.");
    }

    /** Writes to the function's log; falls back to stderr when the core refuses. */
    static void log(int level, String line) {
        try {
            Host.api.log(level, line);
        } catch (RuntimeException e) {
            System.err.println(line);
        } catch (UnsatisfiedLinkError e) {
            System.err.println(line);
        }
    }

    // ---------------------------------------------------------------- loading

    private static String text(Object v) {
        return v == null ? "" : v instanceof String ? (String) v : v.toString();
    }

    private static long number(Object v) {
        return v instanceof Number ? ((Number) v).longValue() : 0;
    }

    private static Handler load(String executable, String codeDir) {
        if (executable.isEmpty()) {
            throw new IllegalArgumentException(
                    "the handler is empty; expected package.Class::method or package.Class");
        }
        String className = executable;
        String methodName = null;
        int sep = executable.indexOf("::");
        if (sep >= 0) {
            className = executable.substring(0, sep).trim();
            methodName = executable.substring(sep + 2).trim();
            if (className.isEmpty() || methodName.isEmpty()) {
                throw new IllegalArgumentException("the handler \"" + executable
                        + "\" is not package.Class::method or package.Class");
            }
        }
        Class<?> type = loadClass(className, codeDir);
        if (methodName != null) {
            return methodHandler(type, methodName);
        }
        if (RequestHandler.class.isAssignableFrom(type)) {
            final RequestHandler<Object, Object> instance = cast(instantiate(type));
            final Type input = requestHandlerInput(type);
            return new Handler() {
                @Override
                byte[] call(byte[] event, Context context) {
                    return output(instance.handleRequest(input(event, input), context));
                }
            };
        }
        if (RequestStreamHandler.class.isAssignableFrom(type)) {
            final RequestStreamHandler instance = (RequestStreamHandler) instantiate(type);
            return new Handler() {
                @Override
                byte[] call(byte[] event, Context context) throws Throwable {
                    ByteArrayOutputStream out = new ByteArrayOutputStream();
                    instance.handleRequest(new ByteArrayInputStream(event), out, context);
                    return out.toByteArray();
                }
            };
        }
        throw new IllegalArgumentException("class " + className + " implements neither "
                + RequestHandler.class.getName() + " nor " + RequestStreamHandler.class.getName()
                + "; name the method as " + className + "::method");
    }

    @SuppressWarnings("unchecked")
    private static RequestHandler<Object, Object> cast(Object o) {
        return (RequestHandler<Object, Object>) o;
    }

    private static Class<?> loadClass(String className, String codeDir) {
        String where = codeDir.isEmpty() ? "the code directory" : "the code directory " + codeDir;
        try {
            return Class.forName(className, true, ClassLoader.getSystemClassLoader());
        } catch (ClassNotFoundException e) {
            throw new IllegalArgumentException("class " + className + " not found in " + where
                    + " (its classes and jars, lib/*.jar included)");
        } catch (ExceptionInInitializerError e) {
            Throwable cause = e.getCause() != null ? e.getCause() : e;
            throw new IllegalArgumentException("the static initialiser of " + className + " threw " + cause
                    + where(cause), cause);
        } catch (LinkageError e) {
            throw new IllegalArgumentException("class " + className + " cannot be loaded: " + e, e);
        }
    }

    private static String where(Throwable t) {
        StackTraceElement[] frames = t.getStackTrace();
        return frames.length > 0 ? " at " + frames[0] : "";
    }

    private static Object instantiate(Class<?> type) {
        String name = type.getName();
        if (type.isInterface() || Modifier.isAbstract(type.getModifiers())) {
            throw new IllegalArgumentException("class " + name + " is abstract; the handler needs a concrete class");
        }
        if (type.getEnclosingClass() != null && !Modifier.isStatic(type.getModifiers())) {
            throw new IllegalArgumentException("class " + name + " is an inner class; make it static");
        }
        Constructor<?> ctor;
        try {
            ctor = type.getConstructor();
        } catch (NoSuchMethodException e) {
            throw new IllegalArgumentException("class " + name + " has no public no-argument constructor");
        }
        try {
            if (!Modifier.isPublic(type.getModifiers())) {
                ctor.setAccessible(true);
            }
            return ctor.newInstance();
        } catch (InvocationTargetException e) {
            Throwable cause = e.getCause() != null ? e.getCause() : e;
            throw new IllegalArgumentException("the constructor of " + name + " threw " + cause + where(cause), cause);
        } catch (ExceptionInInitializerError e) {
            Throwable cause = e.getCause() != null ? e.getCause() : e;
            throw new IllegalArgumentException("initialising " + name + " threw " + cause + where(cause), cause);
        } catch (ReflectiveOperationException e) {
            throw new IllegalArgumentException("cannot create an instance of " + name + ": " + e, e);
        }
    }

    /** Forms of a handler method, best first. */
    private static final int STREAMS_CONTEXT = 4;
    private static final int INPUT_CONTEXT = 3;
    private static final int STREAMS = 2;
    private static final int INPUT = 1;

    private static int form(Method m) {
        Class<?>[] p = m.getParameterTypes();
        boolean streams = p.length >= 2 && p[0] == InputStream.class && p[1] == OutputStream.class;
        switch (p.length) {
            case 1:
                return p[0] == Context.class ? 0 : INPUT;
            case 2:
                if (streams) {
                    return STREAMS;
                }
                return p[1] == Context.class && p[0] != Context.class ? INPUT_CONTEXT : 0;
            case 3:
                return streams && p[2] == Context.class ? STREAMS_CONTEXT : 0;
            default:
                return 0;
        }
    }

    private static Handler methodHandler(Class<?> type, String methodName) {
        Method best = null;
        int bestForm = 0;
        List<Method> candidates = new ArrayList<Method>(Arrays.asList(type.getMethods()));
        java.util.Collections.sort(candidates, new java.util.Comparator<Method>() {
            @Override
            public int compare(Method a, Method b) {
                return a.toGenericString().compareTo(b.toGenericString());
            }
        });
        for (Method m : candidates) {
            if (!m.getName().equals(methodName) || m.isBridge() || m.isSynthetic()) {
                continue;
            }
            int f = form(m);
            if (f > bestForm) {
                best = m;
                bestForm = f;
            }
        }
        if (best == null) {
            throw new IllegalArgumentException("no public method " + methodName + "(…) with 1 to 3 parameters"
                    + " — (I), (I, Context), (InputStream, OutputStream) or (InputStream, OutputStream, Context)"
                    + " — in " + type.getName());
        }
        final Method method = best;
        final int form = bestForm;
        final Object instance = Modifier.isStatic(method.getModifiers()) ? null : instantiate(type);
        if (!Modifier.isPublic(method.getDeclaringClass().getModifiers())) {
            try {
                method.setAccessible(true);
            } catch (RuntimeException e) {
                throw new IllegalArgumentException("cannot call " + method + ": " + e, e);
            }
        }
        final Type input = form == INPUT || form == INPUT_CONTEXT
                ? resolve(method.getGenericParameterTypes()[0], bindings(type)) : null;
        final boolean returnsVoid = method.getReturnType() == void.class;
        return new Handler() {
            @Override
            byte[] call(byte[] event, Context context) throws Throwable {
                ByteArrayOutputStream out = null;
                Object[] args;
                switch (form) {
                    case STREAMS_CONTEXT:
                        out = new ByteArrayOutputStream();
                        args = new Object[] {new ByteArrayInputStream(event), out, context};
                        break;
                    case STREAMS:
                        out = new ByteArrayOutputStream();
                        args = new Object[] {new ByteArrayInputStream(event), out};
                        break;
                    case INPUT_CONTEXT:
                        args = new Object[] {input(event, input), context};
                        break;
                    default:
                        args = new Object[] {input(event, input)};
                }
                Object result;
                try {
                    result = method.invoke(instance, args);
                } catch (InvocationTargetException e) {
                    throw e.getCause() != null ? e.getCause() : e;
                }
                if (out != null) {
                    // A stream handler's output is what it wrote (a returned value, if any, is ignored).
                    return out.toByteArray();
                }
                return returnsVoid ? new byte[0] : output(result);
            }
        };
    }

    // ---------------------------------------------------------------- generics

    /** The input type {@code I} of the {@code RequestHandler<I, O>} a class implements ({@code Object} if raw). */
    static Type requestHandlerInput(Class<?> type) {
        Type t = resolve(RequestHandler.class.getTypeParameters()[0], bindings(type));
        return t instanceof TypeVariable ? Object.class : t;
    }

    /** The type arguments bound to every type variable of a class's supertypes. */
    static Map<TypeVariable<?>, Type> bindings(Class<?> type) {
        Map<TypeVariable<?>, Type> map = new HashMap<TypeVariable<?>, Type>();
        walk(type, map, 0);
        return map;
    }

    private static void walk(Type type, Map<TypeVariable<?>, Type> map, int depth) {
        if (depth > 64) {
            return;
        }
        Class<?> raw;
        if (type instanceof ParameterizedType) {
            ParameterizedType pt = (ParameterizedType) type;
            raw = (Class<?>) pt.getRawType();
            Type[] args = pt.getActualTypeArguments();
            TypeVariable<?>[] vars = raw.getTypeParameters();
            for (int i = 0; i < vars.length && i < args.length; i++) {
                map.put(vars[i], resolve(args[i], map));
            }
        } else if (type instanceof Class) {
            raw = (Class<?>) type;
        } else {
            return;
        }
        for (Type itf : raw.getGenericInterfaces()) {
            walk(itf, map, depth + 1);
        }
        Type sup = raw.getGenericSuperclass();
        if (sup != null) {
            walk(sup, map, depth + 1);
        }
    }

    static Type resolve(Type t, Map<TypeVariable<?>, Type> map) {
        if (t instanceof TypeVariable) {
            Type bound = map.get(t);
            return bound != null && bound != t ? bound : t;
        }
        if (t instanceof ParameterizedType) {
            final ParameterizedType pt = (ParameterizedType) t;
            Type[] args = pt.getActualTypeArguments();
            final Type[] resolved = new Type[args.length];
            boolean changed = false;
            for (int i = 0; i < args.length; i++) {
                resolved[i] = resolve(args[i], map);
                changed |= resolved[i] != args[i];
            }
            if (!changed) {
                return t;
            }
            return new ParameterizedType() {
                @Override
                public Type[] getActualTypeArguments() {
                    return resolved.clone();
                }

                @Override
                public Type getRawType() {
                    return pt.getRawType();
                }

                @Override
                public Type getOwnerType() {
                    return pt.getOwnerType();
                }
            };
        }
        if (t instanceof GenericArrayType) {
            Type component = ((GenericArrayType) t).getGenericComponentType();
            final Type resolved = resolve(component, map);
            if (resolved == component) {
                return t;
            }
            if (resolved instanceof Class) {
                return java.lang.reflect.Array.newInstance((Class<?>) resolved, 0).getClass();
            }
            return new GenericArrayType() {
                @Override
                public Type getGenericComponentType() {
                    return resolved;
                }
            };
        }
        return t;
    }

    // ---------------------------------------------------------------- binding

    /** The event as the handler's input type (see the class comment). */
    static Object input(byte[] event, Type type) {
        Class<?> raw = Convert.raw(type);
        if (raw == byte[].class) {
            return event;
        }
        if (raw == ByteBuffer.class) {
            return ByteBuffer.wrap(event);
        }
        if (raw == InputStream.class) {
            return new ByteArrayInputStream(event);
        }
        if (raw == String.class || raw == CharSequence.class) {
            return new String(event, StandardCharsets.UTF_8);
        }
        if (isBlank(event)) {
            if (raw.isPrimitive()) {
                throw new InputException("the event is empty but the handler takes " + raw.getName());
            }
            return null;
        }
        Object json;
        try {
            json = Json.parse(event);
        } catch (IllegalArgumentException e) {
            // A handler taking Object (Greengrass's HelloWorld) gets a text
            // event that is not JSON as a String, as the Python runtime does.
            if (raw == Object.class) {
                return new String(event, StandardCharsets.UTF_8);
            }
            throw new InputException("the event is not JSON, which " + type.getTypeName() + " needs: "
                    + e.getMessage());
        }
        try {
            return Convert.to(json, type);
        } catch (InputException e) {
            throw new InputException("cannot read the event as " + type.getTypeName() + ": " + e.getMessage(),
                    e.getCause());
        }
    }

    private static boolean isBlank(byte[] event) {
        for (byte b : event) {
            if (b != ' ' && b != '\t' && b != '\n' && b != '\r') {
                return false;
            }
        }
        return true;
    }

    /** The handler's result as bytes (see the class comment). */
    static byte[] output(Object result) {
        if (result == null) {
            return new byte[0];
        }
        if (result instanceof byte[]) {
            return (byte[]) result;
        }
        if (result instanceof ByteBuffer) {
            return Bytes.of((ByteBuffer) result);
        }
        if (result instanceof CharSequence) {
            return result.toString().getBytes(StandardCharsets.UTF_8);
        }
        return Json.writeBytes(result);
    }
}

package com.ggcore.runtime;

import java.lang.reflect.Array;
import java.lang.reflect.Constructor;
import java.lang.reflect.Field;
import java.lang.reflect.GenericArrayType;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.lang.reflect.ParameterizedType;
import java.lang.reflect.Type;
import java.lang.reflect.TypeVariable;
import java.lang.reflect.WildcardType;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collection;
import java.util.Date;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SortedMap;
import java.util.SortedSet;
import java.util.TreeMap;
import java.util.TreeSet;

/**
 * Turns a parsed JSON value ({@link Json#parse}) into an instance of a Java type: numbers and booleans (boxed
 * or primitive, also from their text), strings, enums (by name), {@code Map<String,T>}, collections, arrays,
 * {@code byte[]}/{@code ByteBuffer} (from base64 text), {@code Date} (epoch milliseconds) and plain objects
 * (a public no-arg constructor; each key sets a public setter or field, unknown keys are ignored).
 * Failures throw {@link InputException} naming the path in the document.
 */
public final class Convert {
    private Convert() {
    }

    public static Object to(Object json, Type type) {
        return to(json, type, "$");
    }

    /** The class a type erases to; {@code Object} for unbound type variables and wildcards. */
    public static Class<?> raw(Type type) {
        if (type instanceof Class) {
            return (Class<?>) type;
        }
        if (type instanceof ParameterizedType) {
            return raw(((ParameterizedType) type).getRawType());
        }
        if (type instanceof GenericArrayType) {
            return Array.newInstance(raw(((GenericArrayType) type).getGenericComponentType()), 0).getClass();
        }
        if (type instanceof WildcardType) {
            Type[] upper = ((WildcardType) type).getUpperBounds();
            return upper.length > 0 ? raw(upper[0]) : Object.class;
        }
        if (type instanceof TypeVariable) {
            Type[] bounds = ((TypeVariable<?>) type).getBounds();
            return bounds.length > 0 ? raw(bounds[0]) : Object.class;
        }
        return Object.class;
    }

    private static Type typeArg(Type type, int i) {
        if (type instanceof ParameterizedType) {
            Type[] args = ((ParameterizedType) type).getActualTypeArguments();
            if (i < args.length) {
                return args[i];
            }
        }
        return Object.class;
    }

    private static String kind(Object json) {
        if (json == null) {
            return "null";
        }
        if (json instanceof Map) {
            return "an object";
        }
        if (json instanceof List) {
            return "an array";
        }
        if (json instanceof String) {
            return "a string";
        }
        if (json instanceof Boolean) {
            return "a boolean";
        }
        return "a number";
    }

    private static InputException mismatch(Object json, Class<?> target, String path) {
        return new InputException("cannot bind " + kind(json) + " to " + target.getTypeName() + " at " + path);
    }

    @SuppressWarnings({"unchecked", "rawtypes"})
    static Object to(Object json, Type type, String path) {
        Class<?> target = raw(type);
        if (json == null) {
            if (target.isPrimitive()) {
                throw new InputException("cannot bind null to " + target.getName() + " at " + path);
            }
            return null;
        }
        if (target == Object.class) {
            return json;
        }
        if (target.isPrimitive()) {
            target = box(target);
        }
        if (target == String.class || target == CharSequence.class) {
            if (json instanceof String) {
                return json;
            }
            if (json instanceof Number || json instanceof Boolean) {
                return json.toString();
            }
            throw mismatch(json, target, path);
        }
        if (target == Boolean.class) {
            if (json instanceof Boolean) {
                return json;
            }
            if ("true".equals(json)) {
                return Boolean.TRUE;
            }
            if ("false".equals(json)) {
                return Boolean.FALSE;
            }
            throw mismatch(json, target, path);
        }
        if (target == Character.class) {
            if (json instanceof String && ((String) json).length() == 1) {
                return ((String) json).charAt(0);
            }
            throw mismatch(json, target, path);
        }
        if (Number.class.isAssignableFrom(target)) {
            return number(json, target, path);
        }
        if (target.isEnum()) {
            if (json instanceof String) {
                for (Object constant : target.getEnumConstants()) {
                    if (((Enum<?>) constant).name().equals(json)) {
                        return constant;
                    }
                }
                throw new InputException("\"" + json + "\" is not a constant of " + target.getName() + " at " + path);
            }
            throw mismatch(json, target, path);
        }
        if (target == byte[].class && json instanceof String) {
            return base64((String) json, path);
        }
        if (target == ByteBuffer.class) {
            if (json instanceof String) {
                return ByteBuffer.wrap(base64((String) json, path));
            }
            throw mismatch(json, target, path);
        }
        if (target == Date.class) {
            if (json instanceof Number) {
                return new Date(((Number) json).longValue());
            }
            throw mismatch(json, target, path);
        }
        if (target.isArray()) {
            if (!(json instanceof List)) {
                throw mismatch(json, target, path);
            }
            Type component = type instanceof GenericArrayType ? ((GenericArrayType) type).getGenericComponentType()
                    : target.getComponentType();
            List<?> list = (List<?>) json;
            Object array = Array.newInstance(target.getComponentType(), list.size());
            for (int i = 0; i < list.size(); i++) {
                Array.set(array, i, to(list.get(i), component, path + "[" + i + "]"));
            }
            return array;
        }
        if (Map.class.isAssignableFrom(target)) {
            if (!(json instanceof Map)) {
                throw mismatch(json, target, path);
            }
            Type valueType = typeArg(type, 1);
            Class<?> keyType = raw(typeArg(type, 0));
            if (keyType != Object.class && keyType != String.class && keyType != CharSequence.class) {
                throw new InputException("cannot bind an object to a map keyed by " + keyType.getName() + " at " + path);
            }
            Map map;
            if (target.isInterface() || Modifier.isAbstract(target.getModifiers())) {
                map = SortedMap.class.isAssignableFrom(target) ? new TreeMap() : new LinkedHashMap();
            } else {
                map = (Map) instantiate(target, path);
            }
            for (Map.Entry<String, Object> e : ((Map<String, Object>) json).entrySet()) {
                map.put(e.getKey(), to(e.getValue(), valueType, path + "." + e.getKey()));
            }
            return map;
        }
        if (Collection.class.isAssignableFrom(target) || target == Iterable.class) {
            if (!(json instanceof List)) {
                throw mismatch(json, target, path);
            }
            Type elementType = typeArg(type, 0);
            Collection collection;
            if (target.isInterface() || Modifier.isAbstract(target.getModifiers())) {
                if (SortedSet.class.isAssignableFrom(target)) {
                    collection = new TreeSet();
                } else if (Set.class.isAssignableFrom(target)) {
                    collection = new LinkedHashSet();
                } else {
                    collection = new ArrayList();
                }
            } else {
                collection = (Collection) instantiate(target, path);
            }
            List<?> list = (List<?>) json;
            for (int i = 0; i < list.size(); i++) {
                collection.add(to(list.get(i), elementType, path + "[" + i + "]"));
            }
            return collection;
        }
        if (target.isInterface() || Modifier.isAbstract(target.getModifiers())) {
            throw new InputException("cannot bind " + kind(json) + " to the abstract type " + target.getName() + " at "
                    + path);
        }
        if (!(json instanceof Map)) {
            throw mismatch(json, target, path);
        }
        return bean((Map<String, Object>) json, target, path);
    }

    private static Class<?> box(Class<?> primitive) {
        if (primitive == int.class) {
            return Integer.class;
        }
        if (primitive == long.class) {
            return Long.class;
        }
        if (primitive == double.class) {
            return Double.class;
        }
        if (primitive == float.class) {
            return Float.class;
        }
        if (primitive == boolean.class) {
            return Boolean.class;
        }
        if (primitive == short.class) {
            return Short.class;
        }
        if (primitive == byte.class) {
            return Byte.class;
        }
        if (primitive == char.class) {
            return Character.class;
        }
        return Void.class;
    }

    private static Object number(Object json, Class<?> target, String path) {
        BigDecimal value;
        if (json instanceof Number) {
            value = json instanceof BigDecimal ? (BigDecimal) json : new BigDecimal(json.toString());
        } else if (json instanceof String) {
            try {
                value = new BigDecimal(((String) json).trim());
            } catch (NumberFormatException e) {
                throw new InputException("\"" + json + "\" is not a number (for " + target.getName() + ") at " + path);
            }
        } else {
            throw mismatch(json, target, path);
        }
        try {
            if (target == Double.class) {
                return value.doubleValue();
            }
            if (target == Float.class) {
                return value.floatValue();
            }
            if (target == BigDecimal.class || target == Number.class) {
                return json instanceof Number && target == Number.class ? json : value;
            }
            if (target == BigInteger.class) {
                return value.toBigIntegerExact();
            }
            if (target == Long.class) {
                return value.longValueExact();
            }
            if (target == Integer.class) {
                return value.intValueExact();
            }
            if (target == Short.class) {
                return value.shortValueExact();
            }
            if (target == Byte.class) {
                return value.byteValueExact();
            }
        } catch (ArithmeticException e) {
            throw new InputException(value + " does not fit " + target.getName() + " at " + path);
        }
        throw new InputException("cannot bind a number to " + target.getName() + " at " + path);
    }

    private static byte[] base64(String text, String path) {
        try {
            return Base64.getDecoder().decode(text);
        } catch (IllegalArgumentException e) {
            throw new InputException("the string at " + path + " is not base64 (for bytes)");
        }
    }

    private static Object instantiate(Class<?> type, String path) {
        Constructor<?> ctor;
        try {
            ctor = type.getConstructor();
        } catch (NoSuchMethodException e) {
            throw new InputException("cannot bind to " + type.getName() + " at " + path
                    + ": it has no public no-argument constructor");
        }
        if (type.getEnclosingClass() != null && !Modifier.isStatic(type.getModifiers())) {
            throw new InputException("cannot bind to " + type.getName() + " at " + path
                    + ": it is an inner (non-static nested) class");
        }
        try {
            if (!Modifier.isPublic(type.getModifiers())) {
                ctor.setAccessible(true);
            }
            return ctor.newInstance();
        } catch (InvocationTargetException e) {
            throw new InputException("the constructor of " + type.getName() + " threw " + e.getCause(), e.getCause());
        } catch (ReflectiveOperationException e) {
            throw new InputException("cannot create " + type.getName() + " at " + path + ": " + e, e);
        } catch (RuntimeException e) {
            throw new InputException("cannot create " + type.getName() + " at " + path + ": " + e, e);
        }
    }

    private static Object bean(Map<String, Object> json, Class<?> type, String path) {
        Object bean = instantiate(type, path);
        for (Map.Entry<String, Object> e : json.entrySet()) {
            String key = e.getKey();
            String at = path + "." + key;
            List<Method> setters = Beans.setters(type, key);
            if (!setters.isEmpty()) {
                set(bean, setters, e.getValue(), at);
                continue;
            }
            Field f = Beans.field(type, key);
            if (f != null) {
                Object value = to(e.getValue(), f.getGenericType(), at);
                try {
                    if (!Modifier.isPublic(type.getModifiers())) {
                        f.setAccessible(true);
                    }
                    f.set(bean, value);
                } catch (IllegalAccessException ex) {
                    throw new InputException("cannot set " + type.getName() + "." + f.getName() + ": " + ex, ex);
                }
            }
            // Unknown keys are ignored, as AWS Lambda's Java runtime does.
        }
        return bean;
    }

    /** Calls the first overloaded setter the value binds to. */
    private static void set(Object bean, List<Method> setters, Object json, String path) {
        InputException first = null;
        // Deterministic order; a text setter is tried last unless the value is text, so setX(int) wins for 5.
        final boolean text = json instanceof String;
        java.util.Collections.sort(setters, new java.util.Comparator<Method>() {
            @Override
            public int compare(Method a, Method b) {
                int ra = rank(a), rb = rank(b);
                return ra != rb ? ra - rb : a.toGenericString().compareTo(b.toGenericString());
            }

            private int rank(Method m) {
                Class<?> p = m.getParameterTypes()[0];
                boolean textual = p == String.class || p == CharSequence.class;
                return textual == text ? 0 : 1;
            }
        });
        for (Method m : setters) {
            Object value;
            try {
                value = to(json, m.getGenericParameterTypes()[0], path);
            } catch (InputException e) {
                if (first == null) {
                    first = e;
                }
                continue;
            }
            try {
                if (!Modifier.isPublic(bean.getClass().getModifiers())) {
                    m.setAccessible(true);
                }
                m.invoke(bean, value);
                return;
            } catch (InvocationTargetException e) {
                throw new InputException(bean.getClass().getName() + "." + m.getName() + " threw " + e.getCause()
                        + " at " + path, e.getCause());
            } catch (IllegalAccessException e) {
                throw new InputException("cannot call " + bean.getClass().getName() + "." + m.getName() + ": " + e, e);
            }
        }
        throw first;
    }
}

package com.ggcore.runtime;

import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** Reflection on plain objects: what JSON writes for them and which members JSON keys set. */
public final class Beans {
    private Beans() {
    }

    /**
     * The JSON properties of a plain object: its public instance fields (declaration order), then its public
     * getters {@code getX()}/{@code isX()} (boolean) by property name; a getter replaces a field of that name.
     * Names follow Jackson: {@code getFooBar} → {@code fooBar}, {@code getURL} → {@code url}.
     */
    public static Map<String, Object> properties(Object bean) {
        Class<?> type = bean.getClass();
        Map<String, Object> props = new LinkedHashMap<String, Object>();
        try {
            for (Field f : type.getFields()) {
                int m = f.getModifiers();
                if (Modifier.isStatic(m) || Modifier.isTransient(m)) {
                    continue;
                }
                props.put(f.getName(), f.get(bean));
            }
            List<Method> getters = new ArrayList<Method>();
            for (Method method : type.getMethods()) {
                if (getterName(method) != null) {
                    getters.add(method);
                }
            }
            Collections.sort(getters, new Comparator<Method>() {
                @Override
                public int compare(Method a, Method b) {
                    return getterName(a).compareTo(getterName(b));
                }
            });
            for (Method g : getters) {
                if (!g.isAccessible() && !Modifier.isPublic(g.getDeclaringClass().getModifiers())) {
                    // A public method of a non-public class (e.g. a lambda or private nested class).
                    try {
                        g.setAccessible(true);
                    } catch (RuntimeException e) {
                        continue;
                    }
                }
                props.put(getterName(g), g.invoke(bean));
            }
        } catch (IllegalAccessException e) {
            throw new IllegalArgumentException("cannot read the properties of " + type.getName() + ": " + e, e);
        } catch (java.lang.reflect.InvocationTargetException e) {
            Throwable cause = e.getCause();
            if (cause instanceof RuntimeException) {
                throw (RuntimeException) cause;
            }
            if (cause instanceof Error) {
                throw (Error) cause;
            }
            throw new IllegalArgumentException("a getter of " + type.getName() + " threw " + cause, cause);
        }
        return props;
    }

    static String getterName(Method m) {
        if (Modifier.isStatic(m.getModifiers()) || m.getParameterTypes().length != 0 || m.isBridge()
                || m.isSynthetic() || m.getDeclaringClass() == Object.class) {
            return null;
        }
        String name = m.getName();
        Class<?> ret = m.getReturnType();
        if (name.startsWith("get") && name.length() > 3 && ret != void.class) {
            return propertyName(name.substring(3));
        }
        if (name.startsWith("is") && name.length() > 2 && (ret == boolean.class || ret == Boolean.class)) {
            return propertyName(name.substring(2));
        }
        return null;
    }

    /** Lower-cases the leading run of capitals (Jackson's rule): URL → url, URLPath → urlpath, Name → name. */
    static String propertyName(String suffix) {
        StringBuilder b = new StringBuilder(suffix);
        for (int i = 0; i < b.length(); i++) {
            char c = b.charAt(i);
            char lower = Character.toLowerCase(c);
            if (c == lower) {
                break;
            }
            b.setCharAt(i, lower);
        }
        return b.toString();
    }

    /**
     * The public one-argument setters a JSON key sets: {@code setKey} with the key's first letter in either
     * case, so "name" and "Name" both find {@code setName}.
     */
    static List<Method> setters(Class<?> type, String key) {
        List<Method> found = new ArrayList<Method>();
        if (key.isEmpty()) {
            return found;
        }
        String upper = "set" + Character.toUpperCase(key.charAt(0)) + key.substring(1);
        String lower = "set" + Character.toLowerCase(key.charAt(0)) + key.substring(1);
        for (Method m : type.getMethods()) {
            if (Modifier.isStatic(m.getModifiers()) || m.getParameterTypes().length != 1 || m.isBridge()
                    || m.isSynthetic()) {
                continue;
            }
            if (m.getName().equals(upper) || m.getName().equals(lower)) {
                found.add(m);
            }
        }
        return found;
    }

    /** The public instance field a JSON key sets: the key itself, else with its first letter's case swapped. */
    static Field field(Class<?> type, String key) {
        if (key.isEmpty()) {
            return null;
        }
        Field f = publicField(type, key);
        if (f == null) {
            char c = key.charAt(0);
            char swapped = Character.isUpperCase(c) ? Character.toLowerCase(c) : Character.toUpperCase(c);
            f = publicField(type, swapped + key.substring(1));
        }
        return f;
    }

    private static Field publicField(Class<?> type, String name) {
        try {
            Field f = type.getField(name);
            int m = f.getModifiers();
            if (Modifier.isStatic(m) || Modifier.isFinal(m)) {
                return null;
            }
            return f;
        } catch (NoSuchFieldException e) {
            return null;
        }
    }
}

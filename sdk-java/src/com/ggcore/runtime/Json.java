package com.ggcore.runtime;

import java.lang.reflect.Array;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Date;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A strict RFC 8259 JSON parser and a writer; the JDK has none.
 *
 * <p>Parsing gives {@code LinkedHashMap<String,Object>} for objects (a repeated key keeps its last value),
 * {@code ArrayList<Object>} for arrays, {@code String}, {@code Boolean}, {@code null}, and for numbers
 * {@code Integer} or {@code Long} (integers that fit), {@code Double} (when it holds the number's decimal text
 * exactly) or else {@code BigDecimal}. Unpaired surrogates in {@code \\u} escapes are rejected, as is nesting
 * deeper than {@link #MAX_DEPTH}.
 *
 * <p>Writing accepts those types and also other numbers, characters, enums (their name), arrays, any
 * {@code Iterable} or {@code Map} (keys by {@code String.valueOf}), {@code byte[]} and {@code ByteBuffer}
 * (base64 text, as Jackson writes them), {@code Date} (epoch milliseconds) and other objects as their public
 * getters and fields (see {@link Beans}). NaN and infinities are written as null.
 */
public final class Json {
    /** Deepest nesting parsed or written. */
    public static final int MAX_DEPTH = 512;

    private Json() {
    }

    /** A document that is not JSON; the message gives the offset (in characters) and what was expected. */
    public static final class JsonException extends IllegalArgumentException {
        private static final long serialVersionUID = 1L;

        public JsonException(String message) {
            super(message);
        }
    }

    // ---------------------------------------------------------------- parsing

    /** Parses UTF-8 JSON text (a leading byte order mark is skipped). */
    public static Object parse(byte[] utf8) {
        String text;
        try {
            text = StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(utf8)).toString();
        } catch (CharacterCodingException e) {
            throw new JsonException("invalid JSON: the bytes are not UTF-8");
        }
        if (text.startsWith("\uFEFF")) {
            text = text.substring(1);
        }
        return parse(text);
    }

    public static Object parse(String text) {
        Parser p = new Parser(text);
        p.skipSpace();
        if (p.pos >= text.length()) {
            throw new JsonException("invalid JSON: empty document");
        }
        Object value = p.value(0);
        p.skipSpace();
        if (p.pos < text.length()) {
            throw p.error("unexpected " + p.describeHere() + " after the value");
        }
        return value;
    }

    private static final class Parser {
        private final String s;
        private int pos;

        Parser(String s) {
            this.s = s;
        }

        JsonException error(String what) {
            return new JsonException("invalid JSON at offset " + pos + ": " + what);
        }

        String describeHere() {
            if (pos >= s.length()) {
                return "end of input";
            }
            char c = s.charAt(pos);
            if (c < 0x20 || c == 0x7f) {
                return String.format("character U+%04X", (int) c);
            }
            return "'" + c + "'";
        }

        void skipSpace() {
            while (pos < s.length()) {
                char c = s.charAt(pos);
                if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
                    pos++;
                } else {
                    break;
                }
            }
        }

        Object value(int depth) {
            if (depth >= MAX_DEPTH) {
                throw error("nested deeper than " + MAX_DEPTH + " levels");
            }
            if (pos >= s.length()) {
                throw error("expected a value, found end of input");
            }
            char c = s.charAt(pos);
            switch (c) {
                case '{':
                    return object(depth);
                case '[':
                    return array(depth);
                case '"':
                    return string();
                case 't':
                    literal("true");
                    return Boolean.TRUE;
                case 'f':
                    literal("false");
                    return Boolean.FALSE;
                case 'n':
                    literal("null");
                    return null;
                default:
                    if (c == '-' || (c >= '0' && c <= '9')) {
                        return number();
                    }
                    throw error("expected a value, found " + describeHere());
            }
        }

        void literal(String word) {
            if (!s.startsWith(word, pos)) {
                throw error("expected '" + word + "'");
            }
            pos += word.length();
        }

        Map<String, Object> object(int depth) {
            pos++; // {
            Map<String, Object> map = new LinkedHashMap<String, Object>();
            skipSpace();
            if (pos < s.length() && s.charAt(pos) == '}') {
                pos++;
                return map;
            }
            while (true) {
                skipSpace();
                if (pos >= s.length() || s.charAt(pos) != '"') {
                    throw error("expected a string key, found " + describeHere());
                }
                String key = string();
                skipSpace();
                if (pos >= s.length() || s.charAt(pos) != ':') {
                    throw error("expected ':' after an object key, found " + describeHere());
                }
                pos++;
                skipSpace();
                map.put(key, value(depth + 1));
                skipSpace();
                if (pos < s.length() && s.charAt(pos) == ',') {
                    pos++;
                    continue;
                }
                if (pos < s.length() && s.charAt(pos) == '}') {
                    pos++;
                    return map;
                }
                throw error("expected ',' or '}' in an object, found " + describeHere());
            }
        }

        List<Object> array(int depth) {
            pos++; // [
            List<Object> list = new ArrayList<Object>();
            skipSpace();
            if (pos < s.length() && s.charAt(pos) == ']') {
                pos++;
                return list;
            }
            while (true) {
                skipSpace();
                list.add(value(depth + 1));
                skipSpace();
                if (pos < s.length() && s.charAt(pos) == ',') {
                    pos++;
                    continue;
                }
                if (pos < s.length() && s.charAt(pos) == ']') {
                    pos++;
                    return list;
                }
                throw error("expected ',' or ']' in an array, found " + describeHere());
            }
        }

        String string() {
            pos++; // opening quote
            StringBuilder out = null;
            int start = pos;
            while (true) {
                if (pos >= s.length()) {
                    throw error("unterminated string");
                }
                char c = s.charAt(pos);
                if (c == '"') {
                    String result = out == null ? s.substring(start, pos) : out.append(s, start, pos).toString();
                    pos++;
                    return result;
                }
                if (c < 0x20) {
                    throw error(String.format("unescaped control character U+%04X in a string", (int) c));
                }
                if (Character.isSurrogate(c)) {
                    // Only possible from a String given to parse(String): input bytes were strict UTF-8.
                    if (Character.isHighSurrogate(c) && pos + 1 < s.length()
                            && Character.isLowSurrogate(s.charAt(pos + 1))) {
                        pos += 2;
                        continue;
                    }
                    throw error("unpaired surrogate in a string");
                }
                if (c != '\\') {
                    pos++;
                    continue;
                }
                if (out == null) {
                    out = new StringBuilder();
                }
                out.append(s, start, pos);
                pos++;
                if (pos >= s.length()) {
                    throw error("unterminated string");
                }
                char e = s.charAt(pos);
                switch (e) {
                    case '"':
                        out.append('"');
                        break;
                    case '\\':
                        out.append('\\');
                        break;
                    case '/':
                        out.append('/');
                        break;
                    case 'b':
                        out.append('\b');
                        break;
                    case 'f':
                        out.append('\f');
                        break;
                    case 'n':
                        out.append('\n');
                        break;
                    case 'r':
                        out.append('\r');
                        break;
                    case 't':
                        out.append('\t');
                        break;
                    case 'u': {
                        pos--; // back onto the backslash for hex4's offsets
                        char unit = hex4();
                        if (Character.isHighSurrogate(unit)) {
                            if (pos + 1 < s.length() && s.charAt(pos + 1) == '\\' && pos + 2 < s.length()
                                    && s.charAt(pos + 2) == 'u') {
                                pos++;
                                char low = hex4();
                                if (!Character.isLowSurrogate(low)) {
                                    throw error("a high surrogate escape is not followed by a low surrogate escape");
                                }
                                out.append(unit).append(low);
                            } else {
                                throw error("unpaired surrogate escape");
                            }
                        } else if (Character.isLowSurrogate(unit)) {
                            throw error("unpaired surrogate escape");
                        } else {
                            out.append(unit);
                        }
                        break;
                    }
                    default:
                        throw error("invalid escape '\\" + e + "'");
                }
                pos++;
                start = pos;
            }
        }

        /** Reads {@code \\uXXXX} starting at the backslash; leaves pos on the last hex digit. */
        char hex4() {
            if (pos + 6 > s.length()) {
                throw error("truncated \\u escape");
            }
            int v = 0;
            for (int i = 2; i < 6; i++) {
                int d = Character.digit(s.charAt(pos + i), 16);
                if (d < 0 || s.charAt(pos + i) > 'f') {
                    pos += i;
                    throw error("invalid hex digit in a \\u escape");
                }
                v = v * 16 + d;
            }
            pos += 5;
            return (char) v;
        }

        Object number() {
            int start = pos;
            if (s.charAt(pos) == '-') {
                pos++;
            }
            if (pos >= s.length() || !isDigit(s.charAt(pos))) {
                throw error("expected a digit in a number");
            }
            if (s.charAt(pos) == '0') {
                pos++;
                if (pos < s.length() && isDigit(s.charAt(pos))) {
                    throw error("leading zero in a number");
                }
            } else {
                while (pos < s.length() && isDigit(s.charAt(pos))) {
                    pos++;
                }
            }
            boolean integral = true;
            if (pos < s.length() && s.charAt(pos) == '.') {
                integral = false;
                pos++;
                if (pos >= s.length() || !isDigit(s.charAt(pos))) {
                    throw error("expected a digit after the decimal point");
                }
                while (pos < s.length() && isDigit(s.charAt(pos))) {
                    pos++;
                }
            }
            if (pos < s.length() && (s.charAt(pos) == 'e' || s.charAt(pos) == 'E')) {
                integral = false;
                pos++;
                if (pos < s.length() && (s.charAt(pos) == '+' || s.charAt(pos) == '-')) {
                    pos++;
                }
                if (pos >= s.length() || !isDigit(s.charAt(pos))) {
                    throw error("expected a digit in the exponent");
                }
                while (pos < s.length() && isDigit(s.charAt(pos))) {
                    pos++;
                }
            }
            return numberOf(s.substring(start, pos), integral);
        }

        private static boolean isDigit(char c) {
            return c >= '0' && c <= '9';
        }
    }

    static Object numberOf(String text, boolean integral) {
        if (integral && text.length() <= 19) {
            try {
                long v = Long.parseLong(text);
                if (v >= Integer.MIN_VALUE && v <= Integer.MAX_VALUE) {
                    return Integer.valueOf((int) v);
                }
                return Long.valueOf(v);
            } catch (NumberFormatException e) {
                // beyond long: BigDecimal below
            }
        }
        BigDecimal exact = new BigDecimal(text);
        if (!integral) {
            double d = exact.doubleValue();
            if (!Double.isInfinite(d) && new BigDecimal(Double.toString(d)).compareTo(exact) == 0) {
                return Double.valueOf(d);
            }
        }
        return exact;
    }

    // ---------------------------------------------------------------- writing

    public static String write(Object value) {
        StringBuilder out = new StringBuilder();
        new Writer(out).value(value, 0);
        return out.toString();
    }

    public static byte[] writeBytes(Object value) {
        return write(value).getBytes(StandardCharsets.UTF_8);
    }

    /** A JSON string literal for {@code text}. */
    public static String quote(String text) {
        StringBuilder out = new StringBuilder(text.length() + 2);
        writeString(out, text);
        return out.toString();
    }

    private static final class Writer {
        private final StringBuilder out;
        private final IdentityHashMap<Object, Boolean> open = new IdentityHashMap<Object, Boolean>();

        Writer(StringBuilder out) {
            this.out = out;
        }

        void value(Object v, int depth) {
            if (depth >= MAX_DEPTH) {
                throw new IllegalArgumentException("cannot write JSON nested deeper than " + MAX_DEPTH + " levels");
            }
            if (v == null) {
                out.append("null");
            } else if (v instanceof CharSequence) {
                writeString(out, v.toString());
            } else if (v instanceof Character) {
                writeString(out, v.toString());
            } else if (v instanceof Boolean) {
                out.append(((Boolean) v).booleanValue() ? "true" : "false");
            } else if (v instanceof Number) {
                number((Number) v);
            } else if (v instanceof Enum) {
                writeString(out, ((Enum<?>) v).name());
            } else if (v instanceof byte[]) {
                writeString(out, Base64.getEncoder().encodeToString((byte[]) v));
            } else if (v instanceof ByteBuffer) {
                writeString(out, Base64.getEncoder().encodeToString(Bytes.of((ByteBuffer) v)));
            } else if (v instanceof Date) {
                out.append(((Date) v).getTime());
            } else {
                if (open.put(v, Boolean.TRUE) != null) {
                    throw new IllegalArgumentException(
                            "cannot write JSON: a " + v.getClass().getName() + " contains itself");
                }
                if (v instanceof Map) {
                    out.append('{');
                    boolean first = true;
                    for (Map.Entry<?, ?> e : ((Map<?, ?>) v).entrySet()) {
                        if (!first) {
                            out.append(',');
                        }
                        first = false;
                        writeString(out, String.valueOf(e.getKey()));
                        out.append(':');
                        value(e.getValue(), depth + 1);
                    }
                    out.append('}');
                } else if (v instanceof Iterable) {
                    out.append('[');
                    boolean first = true;
                    for (Object item : (Iterable<?>) v) {
                        if (!first) {
                            out.append(',');
                        }
                        first = false;
                        value(item, depth + 1);
                    }
                    out.append(']');
                } else if (v.getClass().isArray()) {
                    out.append('[');
                    int n = Array.getLength(v);
                    for (int i = 0; i < n; i++) {
                        if (i > 0) {
                            out.append(',');
                        }
                        value(Array.get(v, i), depth + 1);
                    }
                    out.append(']');
                } else {
                    value(Beans.properties(v), depth);
                }
                open.remove(v);
            }
        }

        void number(Number n) {
            if (n instanceof Double || n instanceof Float) {
                double d = n.doubleValue();
                if (Double.isNaN(d) || Double.isInfinite(d)) {
                    out.append("null");
                } else {
                    out.append(n.toString());
                }
            } else if (n instanceof Integer || n instanceof Long || n instanceof Short || n instanceof Byte
                    || n instanceof BigInteger || n instanceof BigDecimal
                    || n instanceof java.util.concurrent.atomic.AtomicInteger
                    || n instanceof java.util.concurrent.atomic.AtomicLong) {
                out.append(n.toString());
            } else {
                // Some other Number: its toString may not be JSON, so go through BigDecimal.
                double d = n.doubleValue();
                if (Double.isNaN(d) || Double.isInfinite(d)) {
                    out.append("null");
                } else {
                    out.append(new BigDecimal(n.toString()).toString());
                }
            }
        }
    }

    static void writeString(StringBuilder out, String s) {
        out.append('"');
        int n = s.length();
        for (int i = 0; i < n; i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"':
                    out.append("\\\"");
                    break;
                case '\\':
                    out.append("\\\\");
                    break;
                case '\n':
                    out.append("\\n");
                    break;
                case '\r':
                    out.append("\\r");
                    break;
                case '\t':
                    out.append("\\t");
                    break;
                case '\b':
                    out.append("\\b");
                    break;
                case '\f':
                    out.append("\\f");
                    break;
                default:
                    if (c < 0x20 || c == 0x7f || c == '\u2028' || c == '\u2029') {
                        hexEscape(out, c);
                    } else if (Character.isHighSurrogate(c) && i + 1 < n && Character.isLowSurrogate(s.charAt(i + 1))) {
                        out.append(c).append(s.charAt(i + 1));
                        i++;
                    } else if (Character.isSurrogate(c)) {
                        // Unpaired: UTF-8 cannot carry it, the escape keeps it.
                        hexEscape(out, c);
                    } else {
                        out.append(c);
                    }
            }
        }
        out.append('"');
    }

    private static void hexEscape(StringBuilder out, char c) {
        out.append("\\u");
        String hex = Integer.toHexString(c);
        for (int k = hex.length(); k < 4; k++) {
            out.append('0');
        }
        out.append(hex);
    }
}

package com.ggcore.runtime;

/**
 * The core refused a request. The plugin throws it from the native methods of {@link Host} with one of
 * the codes BadRequest, NotFound, Full, Refused, TooLarge, Unavailable, Internal.
 */
public class HostException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    private final String code;

    public HostException(String code, String message) {
        super(message);
        this.code = code == null ? "Internal" : code;
    }

    public String getCode() {
        return code;
    }

    /** Whether the request itself was wrong (the SDK's Invalid...RequestException). */
    public boolean isInvalidRequest() {
        return "BadRequest".equals(code) || "TooLarge".equals(code);
    }

    /** "CODE: message", the text the SDK exceptions carry. */
    public String describe() {
        String message = getMessage();
        return message == null || message.isEmpty() ? code : code + ": " + message;
    }
}

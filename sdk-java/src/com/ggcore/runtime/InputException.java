package com.ggcore.runtime;

/** The event could not be bound to the type the handler takes (not JSON, or JSON of the wrong shape). */
public class InputException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public InputException(String message) {
        super(message);
    }

    public InputException(String message, Throwable cause) {
        super(message, cause);
    }
}

package com.amazonaws.greengrass.javasdk.model;

/** The core refused to invoke a function. */
public class GGLambdaException extends Exception {
    private static final long serialVersionUID = 1L;

    public GGLambdaException(String message) {
        super(message);
    }

    public GGLambdaException(String message, Throwable cause) {
        super(message, cause);
    }
}

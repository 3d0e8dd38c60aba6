package com.amazonaws.greengrass.javasdk.model;

/** An invoke request was malformed (no function ARN, bad base64 client context, too large). */
public class InvalidLambdaRequestException extends GGLambdaException {
    private static final long serialVersionUID = 1L;

    public InvalidLambdaRequestException(String message) {
        super(message);
    }

    public InvalidLambdaRequestException(String message, Throwable cause) {
        super(message, cause);
    }
}

package com.amazonaws.greengrass.javasdk.model;

/** The function may not read this secret. */
public class UnauthorizedSecretsManagerRequestException extends GGSecretsManagerException {
    private static final long serialVersionUID = 1L;

    public UnauthorizedSecretsManagerRequestException(String message) {
        super(message);
    }

    public UnauthorizedSecretsManagerRequestException(String message, Throwable cause) {
        super(message, cause);
    }
}

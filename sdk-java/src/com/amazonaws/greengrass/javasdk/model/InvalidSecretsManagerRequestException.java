package com.amazonaws.greengrass.javasdk.model;

/** A secret request was malformed. */
public class InvalidSecretsManagerRequestException extends GGSecretsManagerException {
    private static final long serialVersionUID = 1L;

    public InvalidSecretsManagerRequestException(String message) {
        super(message);
    }

    public InvalidSecretsManagerRequestException(String message, Throwable cause) {
        super(message, cause);
    }
}

package com.amazonaws.greengrass.javasdk.model;

/** A publish or shadow request was malformed or too large. */
public class InvalidIotDataRequestException extends GGIotDataException {
    private static final long serialVersionUID = 1L;

    public InvalidIotDataRequestException(String message) {
        super(message);
    }

    public InvalidIotDataRequestException(String message, Throwable cause) {
        super(message, cause);
    }
}

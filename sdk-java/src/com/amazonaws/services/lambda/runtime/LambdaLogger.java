package com.amazonaws.services.lambda.runtime;

/** Writes a line to the function's log. */
public interface LambdaLogger {
    void log(String message);

    /** The bytes are taken as UTF-8 text. */
    void log(byte[] message);
}

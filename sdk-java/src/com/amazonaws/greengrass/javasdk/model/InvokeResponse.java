package com.amazonaws.greengrass.javasdk.model;

import java.nio.ByteBuffer;

/**
 * The result of an invoke. A function that failed still gives a response: its error document is the payload
 * and {@link #getFunctionError()} says "Handled" or "Unhandled" (empty when it succeeded).
 */
public class InvokeResponse {
    private int statusCode;
    private ByteBuffer payload;
    private String functionError;
    private String invocationId;

    public InvokeResponse() {
    }

    /** 200 for a RequestResponse invoke, 202 for an Event one. */
    public int getStatusCode() {
        return statusCode;
    }

    public void setStatusCode(int statusCode) {
        this.statusCode = statusCode;
    }

    public ByteBuffer getPayload() {
        return payload;
    }

    public void setPayload(ByteBuffer payload) {
        this.payload = payload;
    }

    /** "", "Handled" or "Unhandled" (the published SDK's name for {@link #getFunctionError()}). */
    public String getFunctionErr() {
        return functionError;
    }

    public void setFunctionErr(String functionError) {
        this.functionError = functionError;
    }

    /** "", "Handled" or "Unhandled". */
    public String getFunctionError() {
        return functionError;
    }

    public void setFunctionError(String functionError) {
        this.functionError = functionError;
    }

    /** The id the core gave the invocation. */
    public String getInvocationId() {
        return invocationId;
    }

    public void setInvocationId(String invocationId) {
        this.invocationId = invocationId;
    }
}

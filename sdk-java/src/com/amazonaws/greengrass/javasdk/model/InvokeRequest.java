package com.amazonaws.greengrass.javasdk.model;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;

/** A request to run another function of the group. */
public class InvokeRequest {
    private String functionArn;
    private InvocationType invocationType = InvocationType.RequestResponse;
    private String clientContext;
    private ByteBuffer payload;
    private String qualifier;

    public InvokeRequest() {
    }

    public String getFunctionArn() {
        return functionArn;
    }

    public void setFunctionArn(String functionArn) {
        this.functionArn = functionArn;
    }

    public InvocationType getInvocationType() {
        return invocationType;
    }

    public void setInvocationType(InvocationType invocationType) {
        this.invocationType = invocationType;
    }

    /** The client context as base64 of its JSON text. */
    public String getClientContext() {
        return clientContext;
    }

    public void setClientContext(String clientContext) {
        this.clientContext = clientContext;
    }

    public ByteBuffer getPayload() {
        return payload;
    }

    public void setPayload(ByteBuffer payload) {
        this.payload = payload;
    }

    /** The payload as UTF-8 text. */
    public void setPayload(String payload) {
        this.payload = payload == null ? null : ByteBuffer.wrap(payload.getBytes(StandardCharsets.UTF_8));
    }

    public String getQualifier() {
        return qualifier;
    }

    public void setQualifier(String qualifier) {
        this.qualifier = qualifier;
    }

    public InvokeRequest withFunctionArn(String functionArn) {
        setFunctionArn(functionArn);
        return this;
    }

    public InvokeRequest withInvocationType(InvocationType invocationType) {
        setInvocationType(invocationType);
        return this;
    }

    public InvokeRequest withClientContext(String clientContext) {
        setClientContext(clientContext);
        return this;
    }

    public InvokeRequest withPayload(ByteBuffer payload) {
        setPayload(payload);
        return this;
    }

    public InvokeRequest withPayload(String payload) {
        setPayload(payload);
        return this;
    }

    public InvokeRequest withQualifier(String qualifier) {
        setQualifier(qualifier);
        return this;
    }
}

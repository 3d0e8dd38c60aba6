package com.amazonaws.greengrass.javasdk.model;

import java.nio.ByteBuffer;

/** The shadow service's response document (accepted or rejected). */
public class DeleteThingShadowResult {
    private ByteBuffer payload;

    public DeleteThingShadowResult() {
    }

    public ByteBuffer getPayload() {
        return payload;
    }

    public void setPayload(ByteBuffer payload) {
        this.payload = payload;
    }
}

package com.amazonaws.greengrass.javasdk.model;

import java.nio.ByteBuffer;

/** The shadow service's response document (accepted or rejected). */
public class UpdateThingShadowResult {
    private ByteBuffer payload;

    public UpdateThingShadowResult() {
    }

    public ByteBuffer getPayload() {
        return payload;
    }

    public void setPayload(ByteBuffer payload) {
        this.payload = payload;
    }
}

package com.amazonaws.greengrass.javasdk.model;

import java.nio.ByteBuffer;

/** Updates a thing's shadow with a JSON document ({@code {"state":{"desired":..,"reported":..}}}). */
public class UpdateThingShadowRequest {
    private String thingName;
    private ByteBuffer payload;

    public UpdateThingShadowRequest() {
    }

    public String getThingName() {
        return thingName;
    }

    public void setThingName(String thingName) {
        this.thingName = thingName;
    }

    public ByteBuffer getPayload() {
        return payload;
    }

    public void setPayload(ByteBuffer payload) {
        this.payload = payload;
    }

    public UpdateThingShadowRequest withThingName(String thingName) {
        setThingName(thingName);
        return this;
    }

    public UpdateThingShadowRequest withPayload(ByteBuffer payload) {
        setPayload(payload);
        return this;
    }
}

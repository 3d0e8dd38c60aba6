package com.amazonaws.greengrass.javasdk.model;

/** Deletes a thing's shadow in the core's local shadow service. */
public class DeleteThingShadowRequest {
    private String thingName;

    public DeleteThingShadowRequest() {
    }

    public String getThingName() {
        return thingName;
    }

    public void setThingName(String thingName) {
        this.thingName = thingName;
    }

    public DeleteThingShadowRequest withThingName(String thingName) {
        setThingName(thingName);
        return this;
    }
}

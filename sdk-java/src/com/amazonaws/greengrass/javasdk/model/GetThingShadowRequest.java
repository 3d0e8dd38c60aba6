package com.amazonaws.greengrass.javasdk.model;

/** Gets a thing's shadow in the core's local shadow service. */
public class GetThingShadowRequest {
    private String thingName;

    public GetThingShadowRequest() {
    }

    public String getThingName() {
        return thingName;
    }

    public void setThingName(String thingName) {
        this.thingName = thingName;
    }

    public GetThingShadowRequest withThingName(String thingName) {
        setThingName(thingName);
        return this;
    }
}

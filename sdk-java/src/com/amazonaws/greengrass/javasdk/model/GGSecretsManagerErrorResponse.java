package com.amazonaws.greengrass.javasdk.model;

/** The secrets service's error document ({@code {"Status": n, "Message": "..."}}). */
public class GGSecretsManagerErrorResponse {
    private int status;
    private String message;

    public GGSecretsManagerErrorResponse() {
    }

    public int getStatus() {
        return status;
    }

    public void setStatus(int status) {
        this.status = status;
    }

    public String getMessage() {
        return message;
    }

    public void setMessage(String message) {
        this.message = message;
    }
}

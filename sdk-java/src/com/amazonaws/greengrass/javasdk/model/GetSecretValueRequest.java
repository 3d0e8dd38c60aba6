package com.amazonaws.greengrass.javasdk.model;

/** Asks the core for a secret resource's value (the stage AWSCURRENT unless a version or stage is given). */
public class GetSecretValueRequest {
    private String secretId;
    private String versionId;
    private String versionStage;

    public GetSecretValueRequest() {
    }

    public String getSecretId() {
        return secretId;
    }

    public void setSecretId(String secretId) {
        this.secretId = secretId;
    }

    public String getVersionId() {
        return versionId;
    }

    public void setVersionId(String versionId) {
        this.versionId = versionId;
    }

    public String getVersionStage() {
        return versionStage;
    }

    public void setVersionStage(String versionStage) {
        this.versionStage = versionStage;
    }

    public GetSecretValueRequest withSecretId(String secretId) {
        setSecretId(secretId);
        return this;
    }

    public GetSecretValueRequest withVersionId(String versionId) {
        setVersionId(versionId);
        return this;
    }

    public GetSecretValueRequest withVersionStage(String versionStage) {
        setVersionStage(versionStage);
        return this;
    }
}

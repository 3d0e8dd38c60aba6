package com.amazonaws.greengrass.javasdk.model;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Date;
import java.util.List;

/** A secret's value as the core keeps it. */
public class GetSecretValueResult {
    private String arn;
    private Date createdDate;
    private String name;
    private ByteBuffer secretBinary;
    private String secretString;
    private String versionId;
    private List<String> versionStages;

    public GetSecretValueResult() {
    }

    public String getARN() {
        return arn;
    }

    public void setARN(String arn) {
        this.arn = arn;
    }

    public Date getCreatedDate() {
        return createdDate;
    }

    public void setCreatedDate(Date createdDate) {
        this.createdDate = createdDate;
    }

    public String getName() {
        return name;
    }

    public void setName(String name) {
        this.name = name;
    }

    public ByteBuffer getSecretBinary() {
        return secretBinary;
    }

    public void setSecretBinary(ByteBuffer secretBinary) {
        this.secretBinary = secretBinary;
    }

    public String getSecretString() {
        return secretString;
    }

    public void setSecretString(String secretString) {
        this.secretString = secretString;
    }

    public String getVersionId() {
        return versionId;
    }

    public void setVersionId(String versionId) {
        this.versionId = versionId;
    }

    public List<String> getVersionStages() {
        return versionStages;
    }

    public void setVersionStages(Collection<String> versionStages) {
        this.versionStages = versionStages == null ? null : new ArrayList<String>(versionStages);
    }

    public GetSecretValueResult withARN(String arn) {
        setARN(arn);
        return this;
    }

    public GetSecretValueResult withCreatedDate(Date createdDate) {
        setCreatedDate(createdDate);
        return this;
    }

    public GetSecretValueResult withName(String name) {
        setName(name);
        return this;
    }

    public GetSecretValueResult withSecretBinary(ByteBuffer secretBinary) {
        setSecretBinary(secretBinary);
        return this;
    }

    public GetSecretValueResult withSecretString(String secretString) {
        setSecretString(secretString);
        return this;
    }

    public GetSecretValueResult withVersionId(String versionId) {
        setVersionId(versionId);
        return this;
    }

    public GetSecretValueResult withVersionStages(Collection<String> versionStages) {
        setVersionStages(versionStages);
        return this;
    }

    public GetSecretValueResult withVersionStages(String... versionStages) {
        setVersionStages(versionStages == null ? null : Arrays.asList(versionStages));
        return this;
    }
}

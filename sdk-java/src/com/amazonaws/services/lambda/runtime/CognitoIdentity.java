package com.amazonaws.services.lambda.runtime;

/** A Cognito identity; on a Greengrass core both ids are null. */
public interface CognitoIdentity {
    String getIdentityId();

    String getIdentityPoolId();
}

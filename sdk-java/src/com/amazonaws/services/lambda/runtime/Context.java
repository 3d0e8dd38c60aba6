package com.amazonaws.services.lambda.runtime;

/** What a handler learns about its invocation and its function (AWS Lambda's {@code Context}). */
public interface Context {
    /** The invocation id the core gave this request. */
    String getAwsRequestId();

    String getLogGroupName();

    String getLogStreamName();

    /** NAME from {@code arn:aws:lambda:REGION:ACCOUNT:function:NAME[:VERSION]}. */
    String getFunctionName();

    /** VERSION (or alias) from the ARN; {@code $LATEST} when the ARN has none. */
    String getFunctionVersion();

    String getInvokedFunctionArn();

    /** Greengrass has no Cognito identity: an identity whose ids are null. */
    CognitoIdentity getIdentity();

    /** The caller's client context, or null when it sent none. */
    ClientContext getClientContext();

    /** Milliseconds until the core gives up on this invocation (never negative). */
    int getRemainingTimeInMillis();

    int getMemoryLimitInMB();

    LambdaLogger getLogger();
}

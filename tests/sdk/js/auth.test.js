'use strict';
// Authentication as Baidu's JavaScript SDK signs (spec §2): its signature is
// accepted, a wrong secret key or access key is refused with the BCE error the
// SDK reports, and the SDK's own /v1 BccClient methods meet 404 InvalidVersion.

const {describe, test} = require('node:test');
const assert = require('node:assert/strict');

const {Bcc, ENDPOINT, env, expectBceError, sdk, sdkClient, uniqueName} = require('./helpers');

describe('authentication through @baiducloud/sdk', () => {
  test('the SDK signs with its signed-headers list, and localbcc accepts it', async () => {
    const client = sdkClient();
    const response = await client.sendRequest('GET', '/v2/keypair', {params: {maxKeys: 1}});
    assert.equal(response.body.maxKeys, 1);
    assert.match(response.http_headers['x-bce-request-id'], /^[0-9a-f-]{36}$/);
    assert.match(response.http_headers['content-type'], /^application\/json/);

    // What the SDK put in the Authorization header: six fields, a non-empty
    // signedHeaders (unlike the Python SDK), so this is not the default set.
    const auth = new sdk.Auth('AK', 'SK');
    const header = auth.generateAuthorization('GET', '/v2/keypair', {maxKeys: 1}, {
      Host: '127.0.0.1:1', 'Content-Type': 'application/json; charset=UTF-8', 'x-bce-date': '2026-01-01T00:00:00Z',
    }, Date.now() / 1000);
    assert.equal(header.split('/').length, 6);
    assert.equal(header.split('/')[4], 'content-type;host;x-bce-date');
  });

  test('a wrong secret key is 400 SignatureDoesNotMatch, and nothing is created', async () => {
    const wrong = new Bcc(sdkClient(env('LOCALBCC_AK'), `${env('LOCALBCC_SK')}x`));
    const name = uniqueName('unsigned');
    await expectBceError(wrong.createKeypair(name), 400, 'SignatureDoesNotMatch');
    await expectBceError(wrong.listKeypairs(), 400, 'SignatureDoesNotMatch');
    await expectBceError(wrong.attachKeypair('k-nothing1', ['i-nothing1']), 400, 'SignatureDoesNotMatch');

    // The right key still works afterwards (the SDK adjusts its clock from
    // the error's Date header), and the wrong-key create left nothing behind.
    const right = new Bcc();
    assert.deepEqual((await right.listKeypairs({name})).keypairs, []);
  });

  test('an unknown access key is 403 InvalidAccessKeyId', async () => {
    const stranger = new Bcc(sdkClient('AKnobody0000', env('LOCALBCC_SK')));
    await expectBceError(stranger.listKeypairs(), 403, 'InvalidAccessKeyId');
  });

  test('a signature older than its expiration is 400 RequestExpired', async () => {
    // The SDK's own HttpClient and Auth, with a timestamp two hours back
    // (expirationInSeconds 1800).
    const {ak, sk} = {ak: env('LOCALBCC_AK'), sk: env('LOCALBCC_SK')};
    const http = new sdk.HttpClient({endpoint: ENDPOINT, credentials: {ak, sk}});
    const twoHoursAgo = Date.now() / 1000 - 7200;
    const sign = (credentials, method, path, params, headers) =>
      new sdk.Auth(credentials.ak, credentials.sk).generateAuthorization(method, path, params, headers,
        twoHoursAgo, 1800);
    await expectBceError(http.sendRequest('GET', '/v2/keypair', null, {}, {}, sign), 400, 'RequestExpired');

    // The same path signed now is accepted.
    const fresh = (credentials, method, path, params, headers) =>
      new sdk.Auth(credentials.ak, credentials.sk).generateAuthorization(method, path, params, headers);
    const response = await http.sendRequest('GET', '/v2/keypair', null, {}, {}, fresh);
    assert.ok(Array.isArray(response.body.keypairs));
  });

  test("BccClient's built-in methods call BCC /v1, which localbcc answers 404 InvalidVersion", async () => {
    // This is why the other tests send /v2 requests through sendRequest.
    const client = sdkClient();
    await expectBceError(client.getImages(), 404, 'InvalidVersion');
    await expectBceError(client.listInstances(), 404, 'InvalidVersion');
  });
});

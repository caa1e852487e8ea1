'use strict';
// Binding key pairs to instances through Baidu's JavaScript SDK (spec §4.6,
// the seed page): create a Linux instance, attach, detach, and the errors.

const {after, afterEach, before, describe, test} = require('node:test');
const assert = require('node:assert/strict');

const {Bcc, env, expectBceError, sdkClient, uniqueName} = require('./helpers');

const bcc = new Bcc();

// Spec §4.5's messages, which localbcc completes with the instance at fault
// for these two ("Instance not exist: i-nothing1.").
const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const aboutInstance = (text, id) => new RegExp(`^${escape(text)}(: ${escape(id)})?\\.$`);

describe('attach and detach through @baiducloud/sdk', () => {
  const instances = [];
  const keypairs = [];

  async function newKeypair() {
    const {keypair} = await bcc.createKeypair(uniqueName('bind'));
    keypairs.push(keypair.keypairId);
    return keypair;
  }

  async function newInstance(osType = 'linux') {
    const id = await bcc.runningInstance(osType);
    instances.push(id);
    return id;
  }

  let vm;

  before(async () => {
    vm = await newInstance();
  });

  // Whatever a test left bound to the shared instance, the next one starts without.
  afterEach(async () => {
    const {instance} = await bcc.getInstance(vm);
    if (instance.keypairId) {
      await bcc.detachKeypair(instance.keypairId, [vm]);
    }
    await bcc.waitForStatus(vm, 'Running');
  });

  after(async () => {
    for (const id of instances) {
      await bcc.waitForStatus(id, 'Running').catch(() => {});
      await bcc.releaseInstance(id).catch(() => {});
    }
    for (const id of keypairs) {
      await bcc.deleteKeypair(id).catch(() => {});
    }
  });

  test('a Linux image from GET /v2/image boots a Running instance', async () => {
    const {images} = await bcc.listImages();
    const linux = images.find((i) => i.osType === 'linux');
    assert.ok(linux);
    assert.match(linux.id, /^m-[A-Za-z0-9]{8}$/);
    assert.equal((await bcc.call('GET', `/v2/image/${linux.id}`)).image.id, linux.id);

    const {instance} = await bcc.getInstance(vm);
    assert.match(instance.id, /^i-[A-Za-z0-9]{8}$/);
    assert.equal(instance.status, 'Running');
    assert.equal(instance.osType, 'linux');
    assert.equal(instance.keypairId, '');
    assert.equal(instance.keypairName, '');
  });

  test('attach: the answer, the instance shows the pair, the pair counts it; detach undoes it', async () => {
    const keypair = await newKeypair();

    const attached = await bcc.attachKeypair(keypair.keypairId, [vm]);
    assert.equal(typeof attached.requestId, 'string');
    assert.deepEqual(attached.failedInstanceIdList, []);

    // A Running instance restarts by itself to take the key.
    const {instance} = await bcc.getInstance(vm);
    assert.equal(instance.keypairId, keypair.keypairId);
    assert.equal(instance.keypairName, keypair.name);
    assert.ok(['Starting', 'Running'].includes(instance.status), instance.status);
    await bcc.waitForStatus(vm, 'Running');
    assert.equal((await bcc.getKeypair(keypair.keypairId)).keypair.instanceCount, 1);
    const listed = await bcc.listInstances({keypairId: keypair.keypairId});
    assert.deepEqual(listed.instances.map((i) => i.id), [vm]);

    // In use: it cannot be deleted.
    await expectBceError(bcc.deleteKeypair(keypair.keypairId), 403, 'Keypair.DeleteKeypairInUse',
      'Keypair is in use.');

    const detached = await bcc.detachKeypair(keypair.keypairId, [vm]);
    assert.equal(typeof detached.requestId, 'string');
    assert.deepEqual(detached.failedInstanceIdList, []);
    const {instance: after} = await bcc.getInstance(vm);
    assert.equal(after.keypairId, '');
    assert.equal(after.keypairName, '');
    assert.equal(after.status, 'Running');
    assert.equal((await bcc.getKeypair(keypair.keypairId)).keypair.instanceCount, 0);
    assert.deepEqual((await bcc.listInstances({keypairId: keypair.keypairId})).instances, []);

    // Detaching again skips the instance without error.
    assert.deepEqual((await bcc.detachKeypair(keypair.keypairId, [vm])).failedInstanceIdList, []);
  });

  test('attaching another pair replaces the binding', async () => {
    const first = await newKeypair();
    const second = await newKeypair();
    await bcc.attachKeypair(first.keypairId, [vm]);
    await bcc.waitForStatus(vm, 'Running');
    await bcc.attachKeypair(second.keypairId, [vm]);
    await bcc.waitForStatus(vm, 'Running');
    assert.equal((await bcc.getInstance(vm)).instance.keypairId, second.keypairId);
    assert.equal((await bcc.getKeypair(first.keypairId)).keypair.instanceCount, 0);
    assert.equal((await bcc.getKeypair(second.keypairId)).keypair.instanceCount, 1);
    await bcc.detachKeypair(second.keypairId, [vm]);
  });

  test('errors: 404 Keypair.KeypairNotExist, 404 Keypair.InstanceNotExist, 400 Keypair.AttachAttachedKeypair', async () => {
    const keypair = await newKeypair();

    await expectBceError(bcc.attachKeypair('k-nothing1', [vm]), 404, 'Keypair.KeypairNotExist',
      'Keypair not exist.');
    await expectBceError(bcc.detachKeypair('k-nothing1', [vm]), 404, 'Keypair.KeypairNotExist');
    await expectBceError(bcc.attachKeypair(keypair.keypairId, ['i-nothing1']), 404,
      'Keypair.InstanceNotExist', aboutInstance('Instance not exist', 'i-nothing1'));
    await expectBceError(bcc.detachKeypair(keypair.keypairId, ['i-nothing1']), 404,
      'Keypair.InstanceNotExist');

    // Atomic: a missing instance after a good one changes nothing.
    await expectBceError(bcc.attachKeypair(keypair.keypairId, [vm, 'i-nothing1']), 404,
      'Keypair.InstanceNotExist');
    assert.equal((await bcc.getInstance(vm)).instance.keypairId, '');

    await bcc.attachKeypair(keypair.keypairId, [vm]);
    await bcc.waitForStatus(vm, 'Running');
    await expectBceError(bcc.attachKeypair(keypair.keypairId, [vm]), 400, 'Keypair.AttachAttachedKeypair',
      aboutInstance('Can not attach to an attached keypair', vm));
    assert.equal((await bcc.getKeypair(keypair.keypairId)).keypair.instanceCount, 1);

    await expectBceError(bcc.attachKeypair(keypair.keypairId, []), 400, 'InappropriateJSON');
    await expectBceError(bcc.call('PUT', `/v2/keypair/${keypair.keypairId}`, {
      params: {attach: ''}, body: {instanceIds: vm},
    }), 400, 'InappropriateJSON');

    await bcc.detachKeypair(keypair.keypairId, [vm]);
  });

  test('an instance of another account is 404 Keypair.InstanceNotExist', async () => {
    const other = new Bcc(sdkClient(env('LOCALBCC_AK2'), env('LOCALBCC_SK2')));
    const {keypair} = await other.createKeypair(uniqueName('other'));
    try {
      await expectBceError(other.attachKeypair(keypair.keypairId, [vm]), 404, 'Keypair.InstanceNotExist',
        aboutInstance('Instance not exist', vm));
      assert.notEqual((await bcc.getInstance(vm)).instance.keypairId, keypair.keypairId);
      assert.equal((await other.getKeypair(keypair.keypairId)).keypair.instanceCount, 0);
    } finally {
      await other.deleteKeypair(keypair.keypairId);
    }
  });

  test('a Windows instance is 403 Keypair.UnsupportOsType', async () => {
    const keypair = await newKeypair();
    const windows = await newInstance('windows');
    await expectBceError(bcc.attachKeypair(keypair.keypairId, [windows]), 403, 'Keypair.UnsupportOsType',
      'Unsupported os type, only linux supported.');
  });

  test('an instance created with keypairId shows the pair at once', async () => {
    const keypair = await newKeypair();
    const id = await bcc.runningInstance('linux', {keypairId: keypair.keypairId});
    instances.push(id);
    const {instance} = await bcc.getInstance(id);
    assert.equal(instance.keypairId, keypair.keypairId);
    assert.equal(instance.keypairName, keypair.name);
    assert.equal((await bcc.getKeypair(keypair.keypairId)).keypair.instanceCount, 1);

    // Releasing the instance frees the pair.
    await bcc.releaseInstance(id);
    await expectBceError(bcc.getInstance(id), 404, 'NoSuchObject');
    assert.equal((await bcc.getKeypair(keypair.keypairId)).keypair.instanceCount, 0);
  });
});

package gosdk

import (
	"testing"

	"github.com/baidubce/bce-sdk-go/services/bcc/api"
)

// checkBatch fails the test unless an attach/detach answer decoded to a
// request id and an empty failedInstanceIdList.
func checkBatch(t *testing.T, what string, res *api.BatchOperationResp, err error) {
	t.Helper()
	must(t, what, err)
	if res == nil || res.RequestId == "" || len(res.FailedInstanceIdList) != 0 {
		t.Errorf("%s: want a requestId and no failed instances, got %#v", what, res)
	}
}

func TestAttachAndDetachKeypair(t *testing.T) {
	c := newClient(t)
	linux, _, _ := images(t, c)
	kp := newKeypair(t, c, "bind")
	running := runningInstance(t, c, linux)
	stopped := runningInstance(t, c, linux)
	must(t, "StopInstance", c.StopInstance(stopped, false))
	waitStatus(t, c, stopped, api.InstanceStatusStopped)

	res, err := c.AttachKeypair(&api.AttackKeypairArgs{KeypairId: kp.KeypairId,
		InstanceIds: []string{running, stopped}})
	checkBatch(t, "AttachKeypair", res, err)
	for id, status := range map[string]api.InstanceStatus{running: api.InstanceStatusRunning,
		stopped: api.InstanceStatusStopped} {
		inst := waitStatus(t, c, id, status) // a running instance restarts to take the key
		if inst.KeypairId != kp.KeypairId || inst.KeypairName != kp.Name {
			t.Errorf("%s after attach: keypair %q %q, want %s %s", id, inst.KeypairId,
				inst.KeypairName, kp.KeypairId, kp.Name)
		}
	}
	if n := getKeypair(t, c, kp.KeypairId).InstanceCount; n != 2 {
		t.Errorf("instanceCount after attaching 2: %d", n)
	}
	bound, err := c.ListInstances(&api.ListInstanceArgs{KeypairId: kp.KeypairId})
	must(t, "ListInstances keypairId", err)
	if len(bound.Instances) != 2 {
		t.Errorf("ListInstances keypairId=%s: %+v", kp.KeypairId, bound.Instances)
	}
	err = c.DeleteKeypair(&api.DeleteKeypairArgs{KeypairId: kp.KeypairId})
	expectError(t, err, 403, "Keypair.DeleteKeypairInUse", "")

	res, err = c.DetachKeypair(&api.DetachKeypairArgs{KeypairId: kp.KeypairId,
		InstanceIds: []string{running, stopped}})
	checkBatch(t, "DetachKeypair", res, err)
	if inst := waitStatus(t, c, running, api.InstanceStatusRunning); inst.KeypairId != "" {
		t.Errorf("%s after detach: still bound to %q", running, inst.KeypairId)
	}
	if n := getKeypair(t, c, kp.KeypairId).InstanceCount; n != 0 {
		t.Errorf("instanceCount after detaching: %d", n)
	}
	must(t, "DeleteKeypair", c.DeleteKeypair(&api.DeleteKeypairArgs{KeypairId: kp.KeypairId}))
}

// The five error codes of the seed's "Bind a key pair" page, read as the Go SDK
// reads them: code, HTTP status and message of a *bce.BceServiceError.
func TestAttachErrors(t *testing.T) {
	c := newClient(t)
	slow := slowClient(t, c) // what it starts stays Starting
	linux, _, windows := images(t, c)
	kp := newKeypair(t, c, "errors")
	running := runningInstance(t, c, linux)
	win := runningInstance(t, c, windows)
	starting := createInstances(t, slow, linux, 1)[0]
	if inst := waitStatus(t, c, starting, api.InstanceStatusStarting); inst.InstanceId != starting {
		t.Fatalf("GetInstanceDetail %s: %+v", starting, inst)
	}

	attach := func(keypairID string, ids ...string) error {
		_, err := c.AttachKeypair(&api.AttackKeypairArgs{KeypairId: keypairID, InstanceIds: ids})
		return err
	}
	expectError(t, attach(kp.KeypairId, win), 403,
		"Keypair.UnsupportOsType", "Unsupported os type, only linux supported.")
	expectError(t, attach(kp.KeypairId, starting), 409,
		"Keypair.InstanceStatusForbidden", "Instance not in running or stopped status.")
	expectError(t, attach(kp.KeypairId, "i-NoSuch00"), 404,
		"Keypair.InstanceNotExist", "Instance not exist.")
	expectError(t, attach("k-NoSuch00", running), 404,
		"Keypair.KeypairNotExist", "Keypair not exist.")
	if n := getKeypair(t, c, kp.KeypairId).InstanceCount; n != 0 {
		t.Fatalf("failed attaches bound %d instances", n)
	}

	res, err := c.AttachKeypair(&api.AttackKeypairArgs{KeypairId: kp.KeypairId, InstanceIds: []string{running}})
	checkBatch(t, "AttachKeypair", res, err)
	expectError(t, attach(kp.KeypairId, running), 400,
		"Keypair.AttachAttachedKeypair", "Can not attach to an attached keypair.")
	if n := getKeypair(t, c, kp.KeypairId).InstanceCount; n != 1 {
		t.Errorf("instanceCount after one attach: %d", n)
	}
}

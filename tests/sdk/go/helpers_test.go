// Package gosdk drives a running localbcc with Baidu's official Go SDK
// (github.com/baidubce/bce-sdk-go/services/bcc): what the SDK sends must be
// accepted, and what it decodes must hold real values of the right JSON types.
//
// tests/sdk/test_go_sdk.py runs it against servers it starts itself. To run it
// by hand against your own servers:
//
//	cp go.mod /tmp/gosdk.mod
//	go mod edit -modfile=/tmp/gosdk.mod -replace github.com/baidubce/bce-sdk-go=$BCE_SDK_GO
//	LOCALBCC_ENDPOINT=127.0.0.1:8080 LOCALBCC_SLOW_ENDPOINT=127.0.0.1:8081 \
//	LOCALBCC_CREDENTIALS=AK1:SK1,AK2:SK2,... \
//	GOPROXY=off GOFLAGS=-mod=mod go test -modfile=/tmp/gosdk.mod -count=1 -v .
//
// The environment:
//
//	LOCALBCC_ENDPOINT       host:port of a server run with --transition-seconds 0
//	LOCALBCC_SLOW_ENDPOINT  host:port of a second server on the same database, run
//	                        with a long --transition-seconds (what it starts stays
//	                        Starting/Stopping: instances in a transition)
//	LOCALBCC_CREDENTIALS    ak:sk,ak:sk,... accounts the servers know; each test
//	                        takes one of its own, so counts and lists start empty
package gosdk

import (
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/baidubce/bce-sdk-go/bce"
	"github.com/baidubce/bce-sdk-go/services/bcc"
	"github.com/baidubce/bce-sdk-go/services/bcc/api"
)

var (
	accountsMu   sync.Mutex
	accountsUsed int
)

// newClient is an SDK client on LOCALBCC_ENDPOINT for an account no other test uses.
func newClient(t *testing.T) *bcc.Client {
	t.Helper()
	endpoint := os.Getenv("LOCALBCC_ENDPOINT")
	creds := strings.Split(os.Getenv("LOCALBCC_CREDENTIALS"), ",")
	if endpoint == "" || creds[0] == "" {
		t.Skip("set LOCALBCC_ENDPOINT and LOCALBCC_CREDENTIALS (see helpers_test.go)")
	}
	accountsMu.Lock()
	defer accountsMu.Unlock()
	if accountsUsed >= len(creds) {
		t.Fatalf("LOCALBCC_CREDENTIALS has %d accounts, one per test is needed", len(creds))
	}
	ak, sk, _ := strings.Cut(creds[accountsUsed], ":")
	accountsUsed++
	return clientFor(t, endpoint, ak, sk)
}

// slowClient is the same account as c on LOCALBCC_SLOW_ENDPOINT.
func slowClient(t *testing.T, c *bcc.Client) *bcc.Client {
	t.Helper()
	endpoint := os.Getenv("LOCALBCC_SLOW_ENDPOINT")
	if endpoint == "" {
		t.Skip("set LOCALBCC_SLOW_ENDPOINT (see helpers_test.go)")
	}
	creds := c.Config.Credentials
	return clientFor(t, endpoint, creds.AccessKeyId, creds.SecretAccessKey)
}

func clientFor(t *testing.T, endpoint, ak, sk string) *bcc.Client {
	t.Helper()
	c, err := bcc.NewClient(ak, sk, endpoint)
	if err != nil {
		t.Fatalf("bcc.NewClient: %v", err)
	}
	// The first answer is the one under test: a retried 500 must not pass.
	c.Config.Retry = bce.NewNoRetryPolicy()
	c.Config.ConnectionTimeoutInMillis = 30 * 1000
	return c
}

// must fails the test when an SDK call returned an error.
func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// expectError checks that err is the service error (status, code, message)
// as the SDK reads it: a *bce.BceServiceError with the request's id. An empty
// message is not checked.
func expectError(t *testing.T, err error, status int, code, message string) {
	t.Helper()
	var se *bce.BceServiceError
	if !errors.As(err, &se) {
		t.Fatalf("want a *bce.BceServiceError %d %s, got %T: %v", status, code, err, err)
	}
	if se.StatusCode != status || se.Code != code {
		t.Fatalf("want %d %s, got %d %s (%q)", status, code, se.StatusCode, se.Code, se.Message)
	}
	// the seed's text, which may go on to name the instance: "Instance not exist: i-…."
	named := strings.TrimSuffix(message, ".") + ": "
	if message != "" && se.Message != message && !strings.HasPrefix(se.Message, named) {
		t.Errorf("%s: want message %q, got %q", code, message, se.Message)
	}
	if se.RequestId == "" {
		t.Errorf("%s: the error carries no request id", code)
	}
}

// images returns (a Linux image id, another Linux image id, a Windows image id).
func images(t *testing.T, c *bcc.Client) (string, string, string) {
	t.Helper()
	res, err := c.ListImage(nil)
	must(t, "ListImage", err)
	var linux []string
	windows := ""
	for _, img := range res.Images {
		switch img.OsType {
		case "linux":
			linux = append(linux, img.Id)
		case "windows":
			windows = img.Id
		}
	}
	if len(linux) < 2 || windows == "" {
		t.Fatalf("want two Linux images and a Windows one, got %+v", res.Images)
	}
	return linux[0], linux[1], windows
}

// createInstances creates count instances of image and returns their ids (not waiting).
func createInstances(t *testing.T, c *bcc.Client, image string, count int) []string {
	t.Helper()
	res, err := c.CreateInstance(&api.CreateInstanceArgs{
		ImageId: image, CpuCount: 1, MemoryCapacityInGB: 2, PurchaseCount: count,
		Billing: api.Billing{PaymentTiming: api.PaymentTimingPostPaid},
	})
	must(t, "CreateInstance", err)
	if len(res.InstanceIds) != count {
		t.Fatalf("CreateInstance: want %d ids, got %v", count, res.InstanceIds)
	}
	for _, id := range res.InstanceIds {
		if !strings.HasPrefix(id, "i-") {
			t.Fatalf("CreateInstance: odd instance id %q", id)
		}
	}
	return res.InstanceIds
}

// runningInstance creates one instance of image and waits until it is Running.
func runningInstance(t *testing.T, c *bcc.Client, image string) string {
	t.Helper()
	id := createInstances(t, c, image, 1)[0]
	waitStatus(t, c, id, api.InstanceStatusRunning)
	return id
}

// waitStatus polls GetInstanceDetail until the instance shows status.
func waitStatus(t *testing.T, c *bcc.Client, id string, status api.InstanceStatus) *api.InstanceModel {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		res, err := c.GetInstanceDetail(id)
		must(t, "GetInstanceDetail "+id, err)
		if res.Instance.Status == status {
			return &res.Instance
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still %q, not %q", id, res.Instance.Status, status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func newKeypair(t *testing.T, c *bcc.Client, name string) *api.KeypairModel {
	t.Helper()
	res, err := c.CreateKeypair(&api.CreateKeypairArgs{Name: name, Description: "made by " + t.Name()})
	must(t, "CreateKeypair", err)
	return &res.Keypair
}

func getKeypair(t *testing.T, c *bcc.Client, id string) *api.KeypairModel {
	t.Helper()
	res, err := c.GetKeypairDetail(id)
	must(t, "GetKeypairDetail "+id, err)
	return &res.Keypair
}

package gosdk

import (
	"regexp"
	"testing"

	"github.com/baidubce/bce-sdk-go/services/bcc/api"
)

var (
	imageIDRe    = regexp.MustCompile(`^m-[A-Za-z0-9]{8}$`)
	instanceIDRe = regexp.MustCompile(`^i-[A-Za-z0-9]{8}$`)
	isoTimeRe    = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`)
)

func TestImages(t *testing.T) {
	c := newClient(t)
	all, err := c.ListImage(nil)
	must(t, "ListImage", err)
	if all.IsTruncated || len(all.Images) < 3 {
		t.Fatalf("ListImage: want every image on one page, got %+v", all)
	}
	for _, img := range all.Images {
		if !imageIDRe.MatchString(img.Id) || img.Name == "" || img.OsName == "" ||
			img.OsVersion == "" || img.OsArch == "" || !isoTimeRe.MatchString(img.CreateTime) ||
			img.Type != api.ImageTypeSystem || img.Status != api.ImageStatusAvailable ||
			(img.OsType != "linux" && img.OsType != "windows") {
			t.Errorf("ListImage: an image with missing or odd fields: %+v", img)
		}
		detail, err := c.GetImageDetail(img.Id)
		must(t, "GetImageDetail "+img.Id, err)
		if detail.Image == nil || detail.Image.Id != img.Id || detail.Image.OsType != img.OsType ||
			detail.Image.Name != img.Name {
			t.Errorf("GetImageDetail %s: %+v, the list said %+v", img.Id, detail.Image, img)
		}
	}
	images(t, c) // two Linux images and a Windows one

	// marker paging: two at a time gives back the whole list, in order
	var paged []string
	marker := ""
	for page := 0; ; page++ {
		res, err := c.ListImage(&api.ListImageArgs{Marker: marker, MaxKeys: 2})
		must(t, "ListImage page", err)
		if res.MaxKeys != 2 || res.Marker != marker || len(res.Images) > 2 {
			t.Fatalf("ListImage page %d: %+v", page, res)
		}
		for _, img := range res.Images {
			paged = append(paged, img.Id)
		}
		if !res.IsTruncated {
			if res.NextMarker != "" {
				t.Errorf("last page with a nextMarker %q", res.NextMarker)
			}
			break
		}
		if res.NextMarker == "" || page > len(all.Images) {
			t.Fatalf("ListImage page %d: truncated without a usable nextMarker: %+v", page, res)
		}
		marker = res.NextMarker
	}
	if len(paged) != len(all.Images) {
		t.Fatalf("paging by 2 gave %v, one page gave %d images", paged, len(all.Images))
	}
	for i, img := range all.Images {
		if paged[i] != img.Id {
			t.Fatalf("paging by 2 gave %v, in another order than the single page", paged)
		}
	}

	_, err = c.GetImageDetail("m-NoSuch00")
	expectError(t, err, 404, "NoSuchObject", "")
}

func TestCreateGetListInstances(t *testing.T) {
	c := newClient(t)
	linux, _, windows := images(t, c)
	ids := createInstances(t, c, linux, 2)
	win := createInstances(t, c, windows, 1)[0]
	for _, id := range append(ids, win) {
		inst := waitStatus(t, c, id, api.InstanceStatusRunning)
		if inst.InstanceId != id || !instanceIDRe.MatchString(inst.InstanceId) ||
			inst.InstanceName == "" || inst.Hostname == "" || inst.CpuCount != 1 ||
			inst.MemoryCapacityInGB != 2 || !isoTimeRe.MatchString(inst.CreationTime) ||
			inst.InternalIP == "" || inst.ZoneName == "" || inst.PaymentTiming != "Postpaid" ||
			inst.ImageName == "" || inst.OsName == "" || inst.KeypairId != "" {
			t.Errorf("GetInstanceDetail %s: missing or odd fields: %+v", id, inst)
		}
	}
	if inst := waitStatus(t, c, ids[0], api.InstanceStatusRunning); inst.ImageId != linux {
		t.Errorf("imageId: want %s, got %s", linux, inst.ImageId)
	}
	if inst := waitStatus(t, c, win, api.InstanceStatusRunning); inst.ImageId != windows {
		t.Errorf("imageId: want %s, got %s", windows, inst.ImageId)
	}

	res, err := c.ListInstances(nil)
	must(t, "ListInstances", err)
	if res.IsTruncated || len(res.Instances) != 3 {
		t.Fatalf("ListInstances: want this account's 3 instances, got %+v", res)
	}
	listed := map[string]api.InstanceModel{}
	for _, inst := range res.Instances {
		listed[inst.InstanceId] = inst
	}
	for _, id := range append(ids, win) {
		if inst, ok := listed[id]; !ok || inst.Status != api.InstanceStatusRunning || inst.CpuCount != 1 {
			t.Errorf("ListInstances: %s missing or odd: %+v", id, inst)
		}
	}

	// paging one at a time
	first, err := c.ListInstances(&api.ListInstanceArgs{MaxKeys: 1})
	must(t, "ListInstances maxKeys=1", err)
	if len(first.Instances) != 1 || !first.IsTruncated || first.NextMarker == "" || first.MaxKeys != 1 {
		t.Fatalf("ListInstances maxKeys=1: %+v", first)
	}
	second, err := c.ListInstances(&api.ListInstanceArgs{MaxKeys: 1, Marker: first.NextMarker})
	must(t, "ListInstances marker", err)
	if len(second.Instances) != 1 || second.Instances[0].InstanceId != first.NextMarker ||
		second.Marker != first.NextMarker {
		t.Fatalf("ListInstances from marker %s: %+v", first.NextMarker, second)
	}

	_, err = c.GetInstanceDetail("i-NoSuch00")
	expectError(t, err, 404, "NoSuchObject", "")
}

func TestStopAndStartInstance(t *testing.T) {
	c := newClient(t)
	linux, _, _ := images(t, c)
	id := runningInstance(t, c, linux)

	must(t, "StopInstance", c.StopInstance(id, false))
	waitStatus(t, c, id, api.InstanceStatusStopped)
	err := c.StopInstance(id, true)
	expectError(t, err, 409, "Instance.StopInstanceOperationForbidden", "")

	must(t, "StartInstance", c.StartInstance(id))
	waitStatus(t, c, id, api.InstanceStatusRunning)
	err = c.StartInstance(id)
	expectError(t, err, 409, "Instance.StartInstanceOperationForbidden", "")
}

// The SDK decodes a BatchOperationResp from the reboot's answer: an empty 200
// is an EOF error to it, for a reboot that happened.
func TestRebootInstance(t *testing.T) {
	c := newClient(t)
	linux, _, _ := images(t, c)
	id := runningInstance(t, c, linux)

	res, err := c.RebootInstance(id, false)
	must(t, "RebootInstance", err)
	if res == nil {
		t.Fatal("RebootInstance: no result")
	}
	if res.FailedInstanceIdList == nil || len(res.FailedInstanceIdList) != 0 {
		t.Errorf("RebootInstance: want failedInstanceIdList [], got %#v", res.FailedInstanceIdList)
	}
	if res.RequestId == "" {
		t.Error("RebootInstance: no requestId in the body")
	}
	waitStatus(t, c, id, api.InstanceStatusRunning)

	must(t, "StopInstance", c.StopInstance(id, false))
	waitStatus(t, c, id, api.InstanceStatusStopped)
	_, err = c.RebootInstance(id, true)
	expectError(t, err, 409, "Instance.RebootInstanceOperationForbidden", "")
}

func TestRebuildInstance(t *testing.T) {
	c := newClient(t)
	linux, otherLinux, windows := images(t, c)
	id := runningInstance(t, c, linux)

	// with a password (the SDK encrypts it with the secret key) and no key pair
	must(t, "RebuildInstance", c.RebuildInstance(id, &api.RebuildInstanceArgs{
		ImageId: otherLinux, AdminPass: "pw-1234567"}))
	if inst := waitStatus(t, c, id, api.InstanceStatusRunning); inst.ImageId != otherLinux {
		t.Errorf("after rebuild: want image %s, got %s", otherLinux, inst.ImageId)
	}

	// with a key pair: it is bound to the rebuilt instance
	kp := newKeypair(t, c, "rebuild")
	must(t, "RebuildInstance with a key pair", c.RebuildInstance(id, &api.RebuildInstanceArgs{
		ImageId: linux, KeypairId: kp.KeypairId}))
	inst := waitStatus(t, c, id, api.InstanceStatusRunning)
	if inst.ImageId != linux || inst.KeypairId != kp.KeypairId || inst.KeypairName != kp.Name {
		t.Errorf("after rebuild with %s: %+v", kp.KeypairId, inst)
	}

	err := c.RebuildInstance(id, &api.RebuildInstanceArgs{ImageId: windows, KeypairId: kp.KeypairId})
	expectError(t, err, 403, "Keypair.UnsupportOsType", "")
	err = c.RebuildInstance(id, &api.RebuildInstanceArgs{ImageId: "m-NoSuch00", AdminPass: "pw-1234567"})
	expectError(t, err, 404, "NoSuchObject", "")
}

func TestReleaseInstance(t *testing.T) {
	c := newClient(t)
	linux, _, _ := images(t, c)
	id := runningInstance(t, c, linux)
	keep := runningInstance(t, c, linux)

	must(t, "DeleteInstance", c.DeleteInstance(id))
	_, err := c.GetInstanceDetail(id)
	expectError(t, err, 404, "NoSuchObject", "")
	expectError(t, c.DeleteInstance(id), 404, "NoSuchObject", "")

	res, err := c.ListInstances(nil)
	must(t, "ListInstances", err)
	if len(res.Instances) != 1 || res.Instances[0].InstanceId != keep {
		t.Errorf("after releasing %s: want only %s listed, got %+v", id, keep, res.Instances)
	}
}

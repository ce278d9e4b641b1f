package main

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/viaduct-nys/viaduct/pkg/awstest"
	"github.com/viaduct-nys/viaduct/pkg/eclrs/eclrsgen"
)

// TestFailedUploadLeavesNoGenerator fails an upload after it has read a little of a large generated export: the
// error names the key, and the generator writing into the pipe is not left blocked on it.
func TestFailedUploadLeavesNoGenerator(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	failing := func(_ context.Context, _, _ string, r io.Reader) error {
		_, _ = io.CopyN(io.Discard, r, 4096)
		return errors.New("NoSuchBucket: the bucket does not exist")
	}
	err := uploadGenerated(context.Background(), failing, "no-such-bucket", "export.txt",
		eclrsgen.Options{Rows: 200_000, Seed: 1})
	require.ErrorContains(t, err, "uploading export.txt: NoSuchBucket")
}

// TestUploadGenerated uploads a generated export to the in-process S3 stand-in whole.
func TestUploadGenerated(t *testing.T) {
	ctx := context.Background()
	env, stop, err := awstest.Start(ctx)
	require.NoError(t, err)
	t.Cleanup(stop)
	res, err := env.CreateResources(ctx, awstest.UniqueNames("devupload"), nil)
	require.NoError(t, err)
	require.NoError(t, uploadGenerated(ctx, env.Upload, res.Names.Bucket, "export.txt", eclrsgen.Options{Rows: 100, Seed: 1}))
}

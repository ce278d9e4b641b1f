package awstest

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Upload puts r at bucket/key with one PutObject. Over plain HTTP, which every emulator speaks, the SDK must hash
// the body before sending it, so it needs a body it can seek: an io.ReadSeeker (an *os.File for the benchmark's
// large exports) is sent as it is, anything else is first copied to a temporary file. The module has no S3
// transfer manager, and one PUT takes up to 5 GB, far above the largest export.
func (e *Env) Upload(ctx context.Context, bucket, key string, r io.Reader) error {
	body, ok := r.(io.ReadSeeker)
	if !ok {
		f, err := spool(r)
		if err != nil {
			return fmt.Errorf("buffering s3://%s/%s: %w", bucket, key, err)
		}
		defer os.Remove(f.Name())
		defer f.Close()
		body = f
	}

	size, err := remaining(body)
	if err != nil {
		return fmt.Errorf("sizing s3://%s/%s: %w", bucket, key, err)
	}
	_, err = e.S3.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(bucket),
		Key:           aws.String(key),
		Body:          body,
		ContentLength: aws.Int64(size),
		ContentType:   aws.String("text/plain"),
	})
	if err != nil {
		return fmt.Errorf("uploading s3://%s/%s: %w", bucket, key, err)
	}
	return nil
}

// spool copies r to a temporary file and rewinds it.
func spool(r io.Reader) (*os.File, error) {
	f, err := os.CreateTemp("", "awstest-upload-*")
	if err != nil {
		return nil, err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	return f, nil
}

// remaining returns how many bytes are left from the current offset of s, leaving the offset where it was.
func remaining(s io.Seeker) (int64, error) {
	cur, err := s.Seek(0, io.SeekCurrent)
	if err != nil {
		return 0, err
	}
	end, err := s.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, err
	}
	if _, err := s.Seek(cur, io.SeekStart); err != nil {
		return 0, err
	}
	return end - cur, nil
}

package awstest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// PartSize is the size of the parts Upload sends larger bodies in. S3 wants at least 5 MiB for all parts but the
// last; fauxqs accepts at most 11 MiB in one request.
const PartSize = 8 << 20

// Upload puts r at bucket/key. Over plain HTTP, which every emulator speaks, the SDK must hash a body before sending
// it, so it needs one it can seek: an io.ReadSeeker (an *os.File for the benchmark's large exports) is sent as it
// is, anything else is first copied to a temporary file. Bodies up to PartSize go in one PutObject, larger ones as a
// multipart upload of PartSize parts: fauxqs refuses requests over 11 MiB, and the module has no S3 transfer
// manager to do it.
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
	if size > PartSize {
		return e.uploadParts(ctx, bucket, key, body)
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

// uploadParts sends r as a multipart upload and aborts the upload if any step fails, so no parts are left behind.
func (e *Env) uploadParts(ctx context.Context, bucket, key string, r io.Reader) (err error) {
	created, err := e.S3.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket:      aws.String(bucket),
		Key:         aws.String(key),
		ContentType: aws.String("text/plain"),
	})
	if err != nil {
		return fmt.Errorf("starting multipart upload of s3://%s/%s: %w", bucket, key, err)
	}
	uploadID := created.UploadId
	defer func() {
		if err != nil {
			// Best effort with a context that outlives a cancelled ctx; err already says what went wrong.
			abortCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			_, _ = e.S3.AbortMultipartUpload(abortCtx, &s3.AbortMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(key), UploadId: uploadID})
		}
	}()

	buf := make([]byte, PartSize)
	var parts []s3types.CompletedPart
	for number := int32(1); ; number++ {
		n, readErr := io.ReadFull(r, buf)
		if readErr != nil && readErr != io.ErrUnexpectedEOF && readErr != io.EOF {
			return fmt.Errorf("reading part %d of s3://%s/%s: %w", number, bucket, key, readErr)
		}
		if n == 0 {
			break
		}
		out, err := e.S3.UploadPart(ctx, &s3.UploadPartInput{
			Bucket:        aws.String(bucket),
			Key:           aws.String(key),
			UploadId:      uploadID,
			PartNumber:    aws.Int32(number),
			Body:          bytes.NewReader(buf[:n]),
			ContentLength: aws.Int64(int64(n)),
		})
		if err != nil {
			return fmt.Errorf("uploading part %d of s3://%s/%s: %w", number, bucket, key, err)
		}
		// Without its quotes: the SDK writes '"' as "&#34;" in the request XML, which fauxqs does not decode, and
		// S3 accepts either form.
		etag := strings.Trim(aws.ToString(out.ETag), `"`)
		parts = append(parts, s3types.CompletedPart{ETag: aws.String(etag), PartNumber: aws.Int32(number)})
		if n < len(buf) {
			break
		}
	}

	_, err = e.S3.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          aws.String(bucket),
		Key:             aws.String(key),
		UploadId:        uploadID,
		MultipartUpload: &s3types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil {
		return fmt.Errorf("completing multipart upload of s3://%s/%s: %w", bucket, key, err)
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

package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/viaduct-nys/viaduct/engines/e1"
	"github.com/viaduct-nys/viaduct/pkg/eclrs"
)

func runExtract(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var c Config
	s := NewOptionSet("extract", "[flags] PATH|s3://BUCKET/KEY ...",
		"Import ECLRS exports exactly as Engine 1 does (same de-duplication, same files rows) and print one JSON object\n"+
			"per file: file, status, version, rows, new, matched, duplicate, errors, seconds. Exits 1 if any file failed.", getenv)
	addDatabase(s, &c)
	AddLogging(s, &c, "json")
	addAWS(s, &c)
	addBatchRows(s, &c)
	s.Check(func() error {
		if s.fs.NArg() == 0 {
			return errors.New("name at least one file (a path or s3://bucket/key)")
		}
		return nil
	})
	if err := s.Parse(args, stdout); err != nil {
		return UsageError(err)
	}
	files := s.fs.Args()
	logger := NewLogger(&c, stderr)
	defer logger.Sync() //nolint:errcheck
	pool, err := openCurrentPool(ctx, c.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()

	var s3Client *s3.Client
	importer := e1.NewImporter(e1.ImporterConfig{BatchRows: c.BatchRows}, pool, logger.Named("e1"), nil)
	enc := json.NewEncoder(stdout)
	var failed []string
	for _, name := range files {
		var obj eclrs.Object
		var open e1.OpenFunc
		if strings.HasPrefix(name, "s3://") {
			if s3Client == nil {
				setup, err := loadAWS(ctx, &c, getenv, logger)
				if err != nil {
					return err
				}
				s3Client = setup.S3
			}
			obj, open, err = s3Object(ctx, s3Client, name)
		} else {
			obj, open, err = localObject(name)
		}
		var res *e1.Result
		if err == nil {
			res, err = importer.Import(ctx, obj, open)
		}
		if err != nil {
			// Worth retrying, but this command does not: report it like a failed file and go on.
			res = &e1.Result{File: name, Status: eclrs.FileFailed, Reason: err.Error()}
		}
		if res.Status == eclrs.FileFailed {
			failed = append(failed, name)
		}
		if err := enc.Encode(res); err != nil {
			return err
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d files failed: %s", len(failed), len(files), strings.Join(failed, ", "))
	}
	return nil
}

// localObject identifies a local file by its absolute path, size and modification time: the same unchanged file
// named twice imports once.
func localObject(name string) (eclrs.Object, e1.OpenFunc, error) {
	path, err := filepath.Abs(name)
	if err != nil {
		return eclrs.Object{}, nil, err
	}
	info, err := os.Stat(path)
	if err != nil {
		return eclrs.Object{}, nil, err
	}
	if info.IsDir() {
		return eclrs.Object{}, nil, fmt.Errorf("%s is a directory", name)
	}
	obj := eclrs.Object{
		Filename: path,
		Key:      path,
		ETag:     fmt.Sprintf("local-%d-%d", info.Size(), info.ModTime().UnixNano()),
		Size:     info.Size(),
	}
	return obj, func(context.Context) (io.ReadCloser, error) { return os.Open(path) }, nil
}

// s3Object identifies s3://bucket/key by its current ETag and version.
func s3Object(ctx context.Context, client *s3.Client, name string) (eclrs.Object, e1.OpenFunc, error) {
	bucket, key, ok := strings.Cut(strings.TrimPrefix(name, "s3://"), "/")
	if !ok || bucket == "" || key == "" {
		return eclrs.Object{}, nil, fmt.Errorf("%s: expected s3://BUCKET/KEY", name)
	}
	head, err := client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return eclrs.Object{}, nil, fmt.Errorf("looking up %s: %w", name, err)
	}
	obj := eclrs.Object{
		Filename:  name,
		Bucket:    bucket,
		Key:       key,
		ETag:      strings.Trim(aws.ToString(head.ETag), `"`),
		VersionID: aws.ToString(head.VersionId),
		Size:      aws.ToInt64(head.ContentLength),
	}
	return obj, e1.S3Opener(client, bucket, key, obj.VersionID, obj.ETag), nil
}

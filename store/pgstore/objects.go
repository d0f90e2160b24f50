package pgstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// ObjectOptions name an S3-compatible object store (SeaweedFS, MinIO,
// Ceph's RGW, AWS S3).
type ObjectOptions struct {
	// Endpoint is the server's URL, http://host:port or
	// https://host:port.
	Endpoint  string
	Bucket    string
	Region    string
	AccessKey string
	SecretKey string
	// CreateBucket makes the bucket when it does not exist.
	CreateBucket bool
}

// errObjects marks a failure of the object store, which storageErr
// turns into store.ErrStorageFailing.
var errObjects = errors.New("object store")

type objectStore struct {
	c      *minio.Client
	bucket string
}

func newObjectStore(ctx context.Context, o ObjectOptions) (*objectStore, error) {
	u, err := url.Parse(o.Endpoint)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("object store endpoint %q: want http://host:port or https://host:port", o.Endpoint)
	}
	if o.Bucket == "" {
		return nil, errors.New("object store: no bucket named")
	}
	c, err := minio.New(u.Host, &minio.Options{
		Creds:  credentials.NewStaticV4(o.AccessKey, o.SecretKey, ""),
		Secure: u.Scheme == "https",
		Region: o.Region,
	})
	if err != nil {
		return nil, fmt.Errorf("object store: %w", err)
	}
	os := &objectStore{c: c, bucket: o.Bucket}
	ok, err := c.BucketExists(ctx, o.Bucket)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", errObjects, o.Endpoint, err)
	}
	if !ok {
		if !o.CreateBucket {
			return nil, fmt.Errorf("object store: bucket %s does not exist", o.Bucket)
		}
		// Nodes starting together each find no bucket and make it: the
		// one that loses the race is answered that it owns it already.
		if err := c.MakeBucket(ctx, o.Bucket, minio.MakeBucketOptions{Region: o.Region}); err != nil &&
			minio.ToErrorResponse(err).Code != "BucketAlreadyOwnedByYou" {
			return nil, fmt.Errorf("%w: creating bucket %s: %v", errObjects, o.Bucket, err)
		}
	}
	return os, nil
}

// newKey names a new object: the body's SHA-256 (so the bucket can be
// read by content) and a random suffix, so that no two rows ever name
// one object and deleting one row's object never takes another's body.
func newKey(sum [32]byte) string {
	var r [8]byte
	rand.Read(r[:])
	h := hex.EncodeToString(sum[:])
	return h[:2] + "/" + h + "-" + hex.EncodeToString(r[:])
}

// put stores body under key and returns once the object store has
// acknowledged it (durable, as S3's PUT is).
func (o *objectStore) put(ctx context.Context, key string, body []byte) error {
	_, err := o.c.PutObject(ctx, o.bucket, key, bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{
		ContentType:      "message/rfc822",
		DisableMultipart: true,
	})
	if err != nil {
		return fmt.Errorf("%w: put %s: %v", errObjects, key, err)
	}
	return nil
}

// get reads one whole object.
func (o *objectStore) get(ctx context.Context, key string) ([]byte, error) {
	obj, err := o.c.GetObject(ctx, o.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, fmt.Errorf("%w: get %s: %v", errObjects, key, err)
	}
	defer obj.Close()
	b, err := io.ReadAll(obj)
	if err != nil {
		if minio.ToErrorResponse(err).Code == "NoSuchKey" {
			return nil, fmt.Errorf("body object %s: %w", key, errGoneObject)
		}
		return nil, fmt.Errorf("%w: get %s: %v", errObjects, key, err)
	}
	return b, nil
}

// errGoneObject is an object the database names and the object store
// does not have.
var errGoneObject = errors.New("missing from the object store")

// remove deletes an object; one already gone is not an error.
func (o *objectStore) remove(ctx context.Context, key string) error {
	if err := o.c.RemoveObject(ctx, o.bucket, key, minio.RemoveObjectOptions{}); err != nil {
		if minio.ToErrorResponse(err).Code == "NoSuchKey" {
			return nil
		}
		return fmt.Errorf("%w: remove %s: %v", errObjects, key, err)
	}
	return nil
}

// list calls fn for every object key under prefix.
func (o *objectStore) list(ctx context.Context, prefix string, fn func(key string) error) error {
	for info := range o.c.ListObjects(ctx, o.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if info.Err != nil {
			return fmt.Errorf("%w: list: %v", errObjects, info.Err)
		}
		if strings.HasSuffix(info.Key, "/") {
			continue
		}
		if err := fn(info.Key); err != nil {
			return err
		}
	}
	return nil
}

package pgtest

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

func waitWritable(w *Weed) error {
	c, err := minio.New(fmt.Sprintf("127.0.0.1:%d", w.S3Port), &minio.Options{Creds: credentials.NewStaticV4(w.AccessKey, w.SecretKey, "")})
	if err != nil {
		return err
	}
	var last error
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		last = func() error {
			ok, err := c.BucketExists(ctx, "ready")
			if err != nil {
				return err
			}
			if !ok {
				if err := c.MakeBucket(ctx, "ready", minio.MakeBucketOptions{}); err != nil {
					return err
				}
			}
			_, err = c.PutObject(ctx, "ready", "probe", bytes.NewReader([]byte("x")), 1, minio.PutObjectOptions{})
			return err
		}()
		cancel()
		if last == nil {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("weed's S3 gateway never took a write: %v", last)
}

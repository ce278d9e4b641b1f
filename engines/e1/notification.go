package e1

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// ErrTestEvent is returned by ParseNotification for the s3:TestEvent message S3 sends when a bucket's notification
// configuration is saved. It announces no object; the caller deletes it.
var ErrTestEvent = errors.New("s3:TestEvent message")

// Notification is one S3 object announced on the queue.
type Notification struct {
	Bucket    string
	ETag      string // as S3 wrote it, without quotes; empty if the event has none
	EventName string // such as "ObjectCreated:Put"
	EventTime time.Time
	Key       string // decoded: "a+b%3A.TXT" in the event is "a b:.TXT" here
	Size      int64
	VersionID string // empty for unversioned buckets
}

// ParseNotification decodes an SQS message body: an S3 event notification, raw or inside an SNS envelope
// (`{"Type":"Notification","Message":"<json string>",...}`). It returns ErrTestEvent for s3:TestEvent messages,
// and an error naming the problem for anything else it cannot use.
//
// Only ObjectCreated:* records become Notifications. A message holding only other events (a delete, a restore)
// yields an empty slice and no error, so the caller can acknowledge it and log.
func ParseNotification(body []byte) ([]Notification, error) {
	var msg s3Message
	if err := json.Unmarshal(body, &msg); err != nil {
		return nil, fmt.Errorf("decoding message body: %w", err)
	}

	if msg.Type != "" {
		// SNS wraps what S3 published; the event is the envelope's Message, a JSON document in a string.
		if msg.Type != "Notification" {
			return nil, fmt.Errorf("SNS message of type %q is not a notification", msg.Type)
		}
		if msg.Message == nil {
			return nil, errors.New("SNS notification has no Message")
		}
		inner := msg
		msg = s3Message{}
		if err := json.Unmarshal([]byte(*inner.Message), &msg); err != nil {
			return nil, fmt.Errorf("decoding SNS Message: %w", err)
		}
		if msg.Type != "" {
			return nil, errors.New("SNS Message is itself an SNS message")
		}
	}

	if msg.Event == "s3:TestEvent" {
		return nil, ErrTestEvent
	}
	if msg.Records == nil {
		return nil, errors.New("message is not an S3 event: no Records")
	}
	if len(*msg.Records) == 0 {
		return nil, errors.New("no records in S3 event")
	}

	notifications := make([]Notification, 0, len(*msg.Records))
	for i, r := range *msg.Records {
		n, ok, err := r.notification()
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
		if ok {
			notifications = append(notifications, n)
		}
	}
	return notifications, nil
}

// IsImportable reports whether key names an ECLRS export: it ends in ".txt" in any case. The original logged and
// deleted notifications for other keys (spec §3.1); so should the caller.
func IsImportable(key string) bool {
	const suffix = ".txt"
	return len(key) >= len(suffix) && strings.EqualFold(key[len(key)-len(suffix):], suffix)
}

// s3Message is every shape a body on the queue can take: an SNS envelope (Type, Message), an S3 test event (Event)
// or an S3 event notification (Records). The pointers tell "absent" from "empty".
type s3Message struct {
	Type    string      `json:"Type"`
	Message *string     `json:"Message"`
	Event   string      `json:"Event"`
	Records *[]s3Record `json:"Records"`
}

// s3Record is the part of an S3 event record engine 1 uses.
type s3Record struct {
	EventName string `json:"eventName"`
	EventTime string `json:"eventTime"`
	S3        struct {
		Bucket struct {
			Name string `json:"name"`
		} `json:"bucket"`
		Object struct {
			Key       *string `json:"key"`
			Size      int64   `json:"size"`
			ETag      string  `json:"eTag"`
			VersionID string  `json:"versionId"`
		} `json:"object"`
	} `json:"s3"`
}

// notification turns an ObjectCreated record into a Notification; ok is false for other events.
func (r s3Record) notification() (n Notification, ok bool, err error) {
	if r.EventName == "" {
		return n, false, errors.New("no eventName")
	}
	// S3 writes "ObjectCreated:Put"; the "s3:" form is the one used in notification configurations.
	if !strings.HasPrefix(strings.TrimPrefix(r.EventName, "s3:"), "ObjectCreated:") {
		return n, false, nil
	}

	if r.S3.Bucket.Name == "" {
		return n, false, errors.New("no s3.bucket.name")
	}
	if r.S3.Object.Key == nil || *r.S3.Object.Key == "" {
		return n, false, errors.New("no s3.object.key")
	}
	// S3 form-encodes keys in events: "+" is a space, "%3A" a colon, "%2F" (moto) or "/" a slash.
	key, err := url.QueryUnescape(*r.S3.Object.Key)
	if err != nil {
		return n, false, fmt.Errorf("decoding s3.object.key %q: %w", *r.S3.Object.Key, err)
	}
	if r.EventTime == "" {
		return n, false, errors.New("no eventTime")
	}
	eventTime, err := parseEventTime(r.EventTime)
	if err != nil {
		return n, false, err
	}
	if r.S3.Object.Size < 0 {
		return n, false, fmt.Errorf("negative s3.object.size %d", r.S3.Object.Size)
	}

	return Notification{
		Bucket:    r.S3.Bucket.Name,
		ETag:      strings.Trim(r.S3.Object.ETag, `"`),
		EventName: r.EventName,
		EventTime: eventTime,
		Key:       key,
		Size:      r.S3.Object.Size,
		VersionID: r.S3.Object.VersionID,
	}, true, nil
}

// zonelessEventTime is an eventTime without a zone, as moto writes it ("2026-12-04T23:23:31.458320"): S3's event
// times are UTC, so it is read as UTC.
const zonelessEventTime = "2006-01-02T15:04:05.999999999"

// parseEventTime reads a record's eventTime: RFC 3339 as S3 writes it ("2020-10-20T08:02:13.456Z"), or the same
// without a zone.
func parseEventTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err == nil {
		return t, nil
	}
	if t, zerr := time.Parse(zonelessEventTime, s); zerr == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("parsing eventTime: %w", err)
}

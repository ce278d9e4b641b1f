package e1

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/viaduct-nys/viaduct/pkg/awstest"
)

// notificationFixture reads a file of testdata/notifications.
func notificationFixture(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "notifications", name))
	require.NoError(t, err)
	return data
}

// motoMultipart is the object of moto_multipart_*.json, announced as event at 23:23:31 and micros microseconds.
func motoMultipart(event string, micros int) Notification {
	return Notification{
		Bucket: "eclrs-exports", ETag: "23a58a0198c4e39fb3c8c7b36e921c9f-2", EventName: event,
		EventTime: time.Date(2026, 12, 4, 23, 23, 31, micros*1000, time.UTC), Key: "big.txt", Size: 8388618,
	}
}

func TestParseNotification(t *testing.T) {
	t.Parallel()

	put := Notification{
		Bucket:    "eclrs-exports",
		ETag:      "0123456789abcdef0123456789abcdef",
		EventName: "ObjectCreated:Put",
		EventTime: time.Date(2020, 10, 20, 8, 2, 13, 456e6, time.UTC),
		Key:       "positive.TXT",
		Size:      1048576,
	}

	tests := []struct {
		name    string
		fixture string
		want    []Notification
		wantErr string // substring; "" means no error
		testEvt bool   // want ErrTestEvent
	}{
		{name: "Raw", fixture: "raw_put.json", want: []Notification{put}},
		{name: "SNSWrapped", fixture: "sns_put.json", want: []Notification{put}},
		{name: "TestEvent", fixture: "test_event.json", testEvt: true},
		{name: "SNSWrappedTestEvent", fixture: "sns_test_event.json", testEvt: true},
		{
			name:    "MultipleRecordsKeepsCreatedOnly",
			fixture: "multiple_records.json",
			want: []Notification{
				{
					Bucket: "eclrs-exports", ETag: "aaaa", EventName: "ObjectCreated:Put",
					EventTime: time.Date(2020, 10, 20, 8, 2, 13, 456e6, time.UTC), Key: "first.TXT", Size: 10,
				},
				{
					Bucket: "eclrs-exports", ETag: "bbbb-20", EventName: "ObjectCreated:CompleteMultipartUpload",
					EventTime: time.Date(2020, 10, 21, 8, 2, 13, 0, time.UTC), Key: "second.txt", Size: 314572800,
					VersionID: "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY",
				},
			},
		},
		{
			name:    "EncodedKey",
			fixture: "encoded_key.json",
			want: []Notification{{
				Bucket: "eclrs-exports", ETag: "cccc", EventName: "ObjectCreated:Put",
				EventTime: time.Date(2020, 10, 20, 8, 2, 0, 0, time.UTC),
				Key:       "exports/COVID19_ECLRS_Export_positive_2020-10-20 0402:15 +%.TXT", Size: 5,
			}},
		},
		{
			// What moto 5 sends through SNS: eventTime without a zone (UTC, as S3's), "/" encoded as %2F, no
			// sequencer, no versionId, no Subject on the envelope.
			name:    "Moto",
			fixture: "moto_put.json",
			want: []Notification{{
				Bucket: "eclrs-exports", ETag: "b1946ac92492d2347c6235b4d2611184", EventName: "ObjectCreated:Put",
				EventTime: time.Date(2026, 12, 4, 23, 23, 31, 458320e3, time.UTC),
				Key:       "exports/COVID19_ECLRS_Export_positive_2026-12-04 0930:15.TXT", Size: 6,
			}},
		},
		// moto announces a multipart upload twice, Put then CompleteMultipartUpload: one object, told apart only by
		// the event (the engine imports it once, TestEngine/MultipartUploadImportsOnce).
		{name: "MotoMultipartPut", fixture: "moto_multipart_put.json", want: []Notification{motoMultipart("ObjectCreated:Put", 542358)}},
		{name: "MotoMultipartComplete", fixture: "moto_multipart_complete.json", want: []Notification{motoMultipart("ObjectCreated:CompleteMultipartUpload", 543608)}},
		{name: "MotoTestEvent", fixture: "moto_test_event.json", testEvt: true},
		{
			name:    "ZonelessEventTimeWithoutFraction",
			fixture: "zoneless_event_time_seconds.json",
			want: []Notification{{
				Bucket: "eclrs-exports", ETag: "aa", EventName: "ObjectCreated:Put",
				EventTime: time.Date(2026, 12, 4, 23, 23, 31, 0, time.UTC), Key: "positive.TXT", Size: 1,
			}},
		},
		{name: "OnlyOtherEvents", fixture: "object_removed.json", want: []Notification{}},
		{name: "MissingKey", fixture: "missing_key.json", wantErr: "record 0: no s3.object.key"},
		{name: "MissingBucket", fixture: "missing_bucket.json", wantErr: "record 0: no s3.bucket.name"},
		{name: "MissingEventName", fixture: "missing_event_name.json", wantErr: "record 0: no eventName"},
		{name: "MissingEventTime", fixture: "missing_event_time.json", wantErr: "record 0: no eventTime"},
		{name: "BadEventTime", fixture: "bad_event_time.json", wantErr: "record 0: parsing eventTime"},
		{name: "EventTimeWithSpace", fixture: "bad_event_time_space.json", wantErr: "record 0: parsing eventTime"},
		{name: "BadKeyEscape", fixture: "bad_key_escape.json", wantErr: `decoding s3.object.key "positive%zz.TXT"`},
		{name: "EmptyRecords", fixture: "empty_records.json", wantErr: "no records in S3 event"},
		{name: "NotAnS3Event", fixture: "not_s3_event.json", wantErr: "not an S3 event"},
		{name: "Garbage", fixture: "garbage.txt", wantErr: "decoding message body"},
		{name: "SubscriptionConfirmation", fixture: "sns_subscription_confirmation.json", wantErr: `type "SubscriptionConfirmation"`},
		{name: "SNSMessageNotJSON", fixture: "sns_message_not_json.json", wantErr: "decoding SNS Message"},
		{name: "SNSWithoutMessage", fixture: "sns_without_message.json", wantErr: "SNS notification has no Message"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseNotification(notificationFixture(t, tt.fixture))
			switch {
			case tt.testEvt:
				require.ErrorIs(t, err, ErrTestEvent)
				require.Nil(t, got)
			case tt.wantErr != "":
				require.ErrorContains(t, err, tt.wantErr)
				require.NotErrorIs(t, err, ErrTestEvent)
				require.Nil(t, got)
			default:
				require.NoError(t, err)
				require.Len(t, got, len(tt.want))
				for i := range tt.want {
					// time.Time is compared with Equal: a parsed -04:00 offset is the same instant as UTC.
					require.True(t, tt.want[i].EventTime.Equal(got[i].EventTime), "EventTime %s, want %s", got[i].EventTime, tt.want[i].EventTime)
					got[i].EventTime = tt.want[i].EventTime
				}
				require.Equal(t, tt.want, got)
			}
		})
	}
}

// TestParseNotificationReadsAwstestEvents checks the parser against the events pkg/awstest announces in the
// integration tests, so the two cannot drift apart on key encoding.
func TestParseNotificationReadsAwstestEvents(t *testing.T) {
	t.Parallel()

	keys := []string{
		"plain.TXT",
		"COVID19_ECLRS_Export_positive_2020-10-20 0402.TXT",
		"dir/with space/a:b+c%d&e=f?.txt",
		"ünïcødé 🦠.txt",
	}
	at := time.Date(2020, 10, 20, 8, 2, 13, 456e6, time.UTC)
	for _, key := range keys {
		t.Run(key, func(t *testing.T) {
			t.Parallel()
			body, err := awstest.ObjectCreatedEvent(awstest.ObjectInfo{Bucket: "b", Key: key, Size: 7, ETag: "e"}, awstest.AnnounceOpts{EventTime: at})
			require.NoError(t, err)
			got, err := ParseNotification(body)
			require.NoError(t, err)
			require.Equal(t, []Notification{{Bucket: "b", ETag: "e", EventName: "ObjectCreated:Put", EventTime: at, Key: key, Size: 7}}, got)
		})
	}

	test, err := awstest.S3TestEvent("b", at)
	require.NoError(t, err)
	_, err = ParseNotification(test)
	require.ErrorIs(t, err, ErrTestEvent)
}

func TestParseEventTime(t *testing.T) {
	t.Parallel()

	tests := []struct {
		in      string
		want    time.Time
		wantErr bool
	}{
		{in: "2020-10-20T08:02:13.456Z", want: time.Date(2020, 10, 20, 8, 2, 13, 456e6, time.UTC)},
		{in: "2020-10-20T04:02:13-04:00", want: time.Date(2020, 10, 20, 8, 2, 13, 0, time.UTC)},
		{in: "2026-12-04T23:23:31.458320", want: time.Date(2026, 12, 4, 23, 23, 31, 458320e3, time.UTC)},
		{in: "2026-12-04T23:23:31", want: time.Date(2026, 12, 4, 23, 23, 31, 0, time.UTC)},
		{in: "2026-12-04T23:23:31.123456789", want: time.Date(2026, 12, 4, 23, 23, 31, 123456789, time.UTC)},
		{in: "2026-12-04 23:23:31", wantErr: true},
		{in: "2026-12-04", wantErr: true},
		{in: "2026-12-04T24:00:00", wantErr: true},
		{in: "20 October 2020", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := parseEventTime(tt.in)
			if tt.wantErr {
				require.ErrorContains(t, err, "parsing eventTime")
				return
			}
			require.NoError(t, err)
			require.True(t, tt.want.Equal(got), "got %s, want %s", got, tt.want)
		})
	}
}

func TestIsImportable(t *testing.T) {
	t.Parallel()

	tests := []struct {
		key  string
		want bool
	}{
		{key: "foo.txt", want: true},
		{key: "foo.TXT", want: true},
		{key: "foo.Txt", want: true},
		{key: "dir/COVID19_ECLRS_Export_positive_2020-10-20 0402.TXT", want: true},
		{key: ".txt", want: true},
		{key: "foo.dat", want: false},
		{key: "foo", want: false},
		{key: "txt", want: false},
		{key: "foo.txt.gz", want: false},
		{key: "foo.tx", want: false},
		{key: "", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, IsImportable(tt.key))
		})
	}
}

// FuzzParseNotification feeds arbitrary message bodies, since anyone able to send to the queue or publish to the
// topic chooses them. It must never panic, and what it accepts must be usable.
func FuzzParseNotification(f *testing.F) {
	entries, err := os.ReadDir(filepath.Join("testdata", "notifications"))
	require.NoError(f, err)
	for _, e := range entries {
		f.Add(notificationFixture(f, e.Name()))
	}
	f.Add([]byte(`{"Type":"Notification","Message":"{\"Type\":\"Notification\",\"Message\":\"{}\"}"}`))
	f.Add([]byte(`null`))

	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := ParseNotification(body)
		if err != nil {
			require.Nil(t, got)
			return
		}
		require.NotNil(t, got)
		for _, n := range got {
			require.NotEmpty(t, n.Bucket)
			require.NotEmpty(t, n.Key)
			require.True(t, strings.HasPrefix(strings.TrimPrefix(n.EventName, "s3:"), "ObjectCreated:"), n.EventName)
			require.GreaterOrEqual(t, n.Size, int64(0))
		}
	})
}

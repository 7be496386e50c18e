-- Evidence uploaded to this service (photos, voice notes): the bytes are in the object store
-- under keys made from their SHA-256 (original/, shown/, thumb/); this row says who uploaded
-- them, what they are, what the camera said (EXIF time and position, kept for the command
-- centre), and, once a report, result or verification carries them, the case they belong to.
-- Applied only in the schemas of the services that take uploads (gridloop_runtime.evidence).
CREATE TABLE attachments (
    attachment_id text PRIMARY KEY,
    sha256        text        NOT NULL,
    content_type  text        NOT NULL,
    kind          text        NOT NULL,            -- photo | audio
    size          bigint      NOT NULL,
    shown_type    text        NOT NULL,            -- the type of the copy without metadata
    thumbnail     boolean     NOT NULL,
    width         integer,
    height        integer,
    uploaded_by   text        NOT NULL,
    uploaded_at   timestamptz NOT NULL,
    taken_at      timestamptz,                     -- EXIF DateTimeOriginal
    lat           double precision,                -- EXIF GPS
    lon           double precision,
    case_id       text,                            -- the case whose evidence it became
    used_at       timestamptz,
    distance_m    double precision                 -- from the case's point, when both are known
);
CREATE INDEX attachments_case ON attachments (case_id) WHERE case_id IS NOT NULL;
CREATE INDEX attachments_unused ON attachments (uploaded_by, uploaded_at) WHERE case_id IS NULL;

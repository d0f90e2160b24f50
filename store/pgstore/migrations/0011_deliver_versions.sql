-- abox_deliver takes the version of each recipient's account record
-- the caller decided on (p_versions, the row's xmin when it was read;
-- 0 or NULL: not checked): a record changed since then answers
-- 'changed' for that recipient, and the caller reads the account again
-- and retries (policy.Engine.Deliver). So a delivery need not read
-- every recipient's account again before it, one query each, to apply
-- a quota, class or state changed since RCPT: the delivery's own
-- statement sees the change. Nodes still calling it with 22 arguments
-- get the default (no check).
--
-- It also runs fewer statements than 0003's for the common letter,
-- each of which costs PostgreSQL an executor start: the account and its
-- usage row are read in one, and a delivery that sets no flag (p_flags
-- NULL) neither parses them nor calls abox_add_keywords. Otherwise it
-- is 0003's.
DROP FUNCTION abox_deliver(bytea, bigint, bytea, bytea, text, bigint[], text[], text[], jsonb,
	bigint[], bigint[], bigint[], boolean[], timestamptz, smallint, timestamptz, integer,
	bigint, bigint, integer, integer, boolean);

CREATE FUNCTION abox_deliver(
	p_sha bytea, p_size bigint, p_structure bytea, p_body bytea, p_object text,
	p_accounts bigint[], p_special text[], p_mailboxes text[], p_flags jsonb,
	p_max_bytes bigint[], p_max_messages bigint[], p_max_received bigint[], p_not_received boolean[],
	p_internal timestamptz, p_zone smallint, p_now timestamptz, p_day integer,
	p_sender bigint, p_max_sent bigint, p_remote integer, p_extra_refs integer, p_all_or_nothing boolean,
	p_versions bigint[] DEFAULT NULL)
RETURNS TABLE (idx integer, code text, mailbox integer, uid_validity bigint, uid bigint, modseq bigint, blob bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
	i integer;
	v_state text;
	v_version bigint;
	v_usage boolean;
	v_code text;
	v_bytes bigint;
	v_messages bigint;
	v_day integer;
	v_received bigint;
	v_sent bigint;
	v_mbox integer;
	v_uidnext bigint;
	v_uid bigint;
	v_modseq bigint;
	v_uv bigint;
	v_flags text[];
	v_blob bigint;
	v_inserted boolean;
	v_trashed boolean := false;
	v_stored integer := 0;
	-- All or nothing: a success stores every recipient, so the body's
	-- references are known when its row is written.
	v_refs integer := CASE WHEN p_all_or_nothing THEN coalesce(cardinality(p_accounts), 0) + p_extra_refs ELSE 0 END;
BEGIN
	IF cardinality(p_accounts) > 1 OR p_sender <> 0 THEN
		PERFORM 1 FROM usage WHERE account = ANY (p_accounts || p_sender) ORDER BY account FOR UPDATE;
	END IF;
	FOR i IN 1 .. coalesce(cardinality(p_accounts), 0) LOOP
		v_code := NULL;
		v_mbox := NULL;
		-- The account and its usage row (locked) in one statement; a
		-- purged account keeps no usage row, and is then read alone.
		v_usage := true;
		SELECT a.state, a.xmin::text::bigint, u.bytes, u.messages, u.day, u.received
			INTO v_state, v_version, v_bytes, v_messages, v_day, v_received
			FROM accounts a JOIN usage u ON u.account = a.id WHERE a.id = p_accounts[i] FOR UPDATE OF u;
		IF NOT FOUND THEN
			v_usage := false;
			SELECT a.state, a.xmin::text::bigint INTO v_state, v_version FROM accounts a WHERE a.id = p_accounts[i];
			IF NOT FOUND THEN
				v_code := 'noaccount';
			END IF;
		END IF;
		IF v_code IS NOT NULL THEN
			NULL;
		ELSIF coalesce(p_versions[i], 0) <> 0 AND v_version <> p_versions[i] THEN
			v_code := 'changed';
		ELSIF v_state <> 'active' THEN
			v_code := 'unavailable:' || v_state;
		ELSIF NOT v_usage THEN
			v_code := 'noaccount';
		ELSIF p_max_bytes[i] > 0 AND v_bytes + p_size > p_max_bytes[i]
			OR p_max_messages[i] > 0 AND v_messages + 1 > p_max_messages[i] THEN
			v_code := 'quota';
		ELSE
			IF v_day <> p_day THEN
				v_received := 0;
			END IF;
			IF NOT p_not_received[i] THEN
				IF p_max_received[i] > 0 AND v_received + 1 > p_max_received[i] THEN
					v_code := 'daily';
				END IF;
				v_received := v_received + 1;
			END IF;
		END IF;
		IF v_code IS NULL THEN
			IF p_special[i] <> '' THEN
				SELECT m.id, m.uid_next INTO v_mbox, v_uidnext FROM mailboxes m
					WHERE m.account = p_accounts[i] AND NOT m.deleting AND lower(m.special_use) = lower(p_special[i])
					ORDER BY m.name COLLATE "C" LIMIT 1 FOR UPDATE;
			ELSIF p_mailboxes[i] <> '' THEN
				SELECT m.id, m.uid_next INTO v_mbox, v_uidnext FROM mailboxes m
					WHERE m.account = p_accounts[i] AND m.name = p_mailboxes[i] AND NOT m.deleting FOR UPDATE;
			END IF;
			-- p_flags is NULL when no recipient sets a flag (most mail).
			IF p_flags IS NULL THEN
				v_flags := '{}';
			ELSE
				v_flags := ARRAY(SELECT jsonb_array_elements_text(p_flags -> (i - 1)));
			END IF;
			IF p_special[i] = '' AND p_mailboxes[i] = '' THEN
				v_code := 'invalidmailbox';
			ELSIF v_mbox IS NULL THEN
				v_code := 'nomailbox';
			ELSIF v_uidnext >= 4294967295 THEN
				v_code := 'full';
			ELSIF cardinality(v_flags) > 0 THEN
				IF NOT abox_add_keywords(p_accounts[i], v_mbox, v_flags) THEN
					v_code := 'keywords';
				END IF;
			END IF;
		END IF;
		IF v_code IS NOT NULL THEN
			IF p_all_or_nothing THEN
				RAISE EXCEPTION USING ERRCODE = 'AB001', MESSAGE = v_code, DETAIL = i::text;
			END IF;
			idx := i; code := v_code; mailbox := NULL; uid_validity := NULL; uid := NULL; modseq := NULL; blob := NULL;
			RETURN NEXT;
			CONTINUE;
		END IF;
		IF v_blob IS NULL THEN
			INSERT INTO blobs AS b (id, sha256, size, structure, body, object, refs)
				VALUES (nextval('blob_ids'), p_sha, p_size, p_structure, p_body, p_object, v_refs)
				ON CONFLICT (sha256) WHERE sha256 IS NOT NULL DO UPDATE SET refs = b.refs + EXCLUDED.refs
				RETURNING b.id, b.xmax = 0 INTO v_blob, v_inserted;
			IF NOT v_inserted AND p_object IS NOT NULL THEN
				INSERT INTO blob_trash (object) VALUES (p_object) ON CONFLICT DO NOTHING;
				v_trashed := true;
			END IF;
		END IF;
		UPDATE mailboxes m SET uid_next = m.uid_next + 1, highest_modseq = m.highest_modseq + 1,
				messages = m.messages + 1, size = m.size + p_size,
				unseen = m.unseen + CASE WHEN '\Seen' = ANY (v_flags) THEN 0 ELSE 1 END
			WHERE m.account = p_accounts[i] AND m.id = v_mbox
			RETURNING m.uid_next - 1, m.highest_modseq, m.uid_validity INTO v_uid, v_modseq, v_uv;
		INSERT INTO messages (account, mailbox, uid, modseq, flags, seen, internal_date, internal_zone, added_at, size, blob)
			VALUES (p_accounts[i], v_mbox, v_uid, v_modseq, v_flags, '\Seen' = ANY (v_flags), p_internal, p_zone, p_now, p_size, v_blob);
		UPDATE usage u SET bytes = u.bytes + p_size, messages = u.messages + 1,
				sent = CASE WHEN u.day = p_day THEN u.sent ELSE 0 END, day = p_day, received = v_received
			WHERE u.account = p_accounts[i];
		PERFORM pg_notify('abox_feed', 'c' || jsonb_build_array(jsonb_strip_nulls(jsonb_build_object(
			'k', 1, 'a', p_accounts[i], 'm', v_mbox, 'u', v_uid,
			'f', CASE WHEN cardinality(v_flags) > 0 THEN to_jsonb(v_flags) END, 's', v_modseq)))::text);
		v_stored := v_stored + 1;
		idx := i; code := NULL; mailbox := v_mbox; uid_validity := v_uv; uid := v_uid; modseq := v_modseq; blob := v_blob;
		RETURN NEXT;
	END LOOP;
	IF v_stored = 0 AND p_remote = 0 THEN
		idx := 0; code := NULL; mailbox := NULL; uid_validity := NULL; uid := NULL; modseq := NULL; blob := NULL;
		RETURN NEXT;
		RETURN;
	END IF;
	IF p_sender <> 0 THEN
		SELECT u.day, u.sent INTO v_day, v_sent FROM usage u WHERE u.account = p_sender;
		IF NOT FOUND THEN
			RAISE EXCEPTION USING ERRCODE = 'AB001', MESSAGE = 'noaccount', DETAIL = '0';
		END IF;
		IF v_day <> p_day THEN
			v_sent := 0;
		END IF;
		IF p_max_sent > 0 AND v_sent + v_stored + p_remote > p_max_sent THEN
			RAISE EXCEPTION USING ERRCODE = 'AB001', MESSAGE = 'sentlimit', DETAIL = '0';
		END IF;
		UPDATE usage u SET received = CASE WHEN u.day = p_day THEN u.received ELSE 0 END, day = p_day,
				sent = v_sent + v_stored + p_remote
			WHERE u.account = p_sender;
	END IF;
	IF v_blob IS NULL THEN
		INSERT INTO blobs AS b (id, sha256, size, structure, body, object, refs)
			VALUES (nextval('blob_ids'), p_sha, p_size, p_structure, p_body, p_object, v_refs)
			ON CONFLICT (sha256) WHERE sha256 IS NOT NULL DO UPDATE SET refs = b.refs + EXCLUDED.refs
			RETURNING b.id, b.xmax = 0 INTO v_blob, v_inserted;
		IF NOT v_inserted AND p_object IS NOT NULL THEN
			INSERT INTO blob_trash (object) VALUES (p_object) ON CONFLICT DO NOTHING;
			v_trashed := true;
		END IF;
	END IF;
	IF NOT p_all_or_nothing THEN
		UPDATE blobs b SET refs = b.refs + v_stored + p_extra_refs WHERE b.id = v_blob;
	END IF;
	idx := 0; code := CASE WHEN v_trashed THEN 'trashed' END; mailbox := NULL; uid_validity := NULL; uid := NULL; modseq := NULL; blob := v_blob;
	RETURN NEXT;
END
$$;

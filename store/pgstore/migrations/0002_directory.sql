-- the directory beyond domains and accounts (DKIM keys, API tokens, idempotent requests, logins, consent CMS objects): reserved, written with its area (issue 18 in progress).
SELECT 1;

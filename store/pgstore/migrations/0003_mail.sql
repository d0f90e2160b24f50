-- mail beyond 0001 (per-mailbox keywords, subscriptions): reserved, written with its area (issue 18 in progress).
SELECT 1;

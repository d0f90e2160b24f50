-- the outbound queue: reserved, written with its area (issue 18 in progress).
SELECT 1;

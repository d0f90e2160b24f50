-- the evidence log, its tree and signed heads, the ledger of official copies: reserved, written with its area (issue 18 in progress).
SELECT 1;

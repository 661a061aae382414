DROP TABLE code_requests;

--bun:split

DROP TABLE codes;

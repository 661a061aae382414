-- What the message's template saw (its data, as JSON): an HTTP channel hands
-- it to its Jsonnet body as ctx.template_data, as Kratos does, so an SMS
-- gateway's request can use the code or the address on their own.
ALTER TABLE courier_messages ADD COLUMN template_data JSONB NOT NULL DEFAULT '{}';

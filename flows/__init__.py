"""Conversation state machines on `transitions` (transport-agnostic); see issue 3."""

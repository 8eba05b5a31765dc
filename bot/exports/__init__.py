"""Notes and data that leave the chat (`/export`), and records that come in (`hemadose import`).

One patient's record is read once (`record.read`) and written out as a clinical note, a CSV, a FHIR
R4 Bundle or an iCalendar file; a CSV or a Bundle is read back (`importing`) into the same record.
Every number in them is the stored one: the record's values as entered, and the core's stored decision.
"""

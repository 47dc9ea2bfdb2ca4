"""What comes in: the event catalogue (one schema per webhook type), caller IDs and phone
numbers, attachments (bytes -> type, TIFF -> PDF, where a URL may be fetched from), and the
sample events that previews and `simulate` use. Imported by every stage; imports none."""

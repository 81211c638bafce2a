"""The JADA blast sender: email blasts through SES v2 that refuse to send when they can tell the send will fail."""

__version__ = "0.1.0"

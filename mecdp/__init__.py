"""MeCDP: a customer data platform for medical-aesthetics (医美) clinic chains."""

__version__ = "0.1.0"

"""DICOMweb (PS3.18): QIDO-RS search and WADO-RS retrieve, authorized by a viewer scope."""

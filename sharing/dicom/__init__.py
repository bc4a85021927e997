"""Everything that speaks pydicom. The rest of Lightbox sees domain objects and domain errors."""


def configure_pydicom() -> None:
    """Don't validate values while reading.

    Lightbox validates what it relies on itself (sharing.dicom.header). pydicom's own checks would
    only warn, and its warnings quote element values, patient names included, into the logs.
    """
    from pydicom import config

    config.settings.reading_validation_mode = config.IGNORE

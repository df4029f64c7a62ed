"""libvirt XML: the only package that knows element names and XPath."""

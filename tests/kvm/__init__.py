"""Test support for real guests under libvirtd (qemu:///system): the guest kit (kernel and
busybox initramfs), the daemons, the guest's serial console, and a bare domain XML. See README.md.
"""

/*
 * Test-only stand-in for Windows' bcryptprimitives.dll, for running passthru.exe under wine.
 *
 * Rust's standard library imports ProcessPrng from bcryptprimitives.dll on Windows. Debian 12's
 * wine 8.0 has no such DLL, so every Rust .exe dies at load time with status c0000135
 * (STATUS_DLL_NOT_FOUND). Placed next to the .exe, this DLL provides ProcessPrng on top of
 * RtlGenRandom (advapi32!SystemFunction036), which wine does have. It is built and used only by
 * tools/stages/30-windows.sh; it is never shipped.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

/* Same contract as the real one: fill `data` with `length` random bytes; always TRUE there. */
BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x10000000 ? 0x10000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk)) {
            return FALSE;
        }
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}

#nullable enable
using System;
using System.IO;
using System.Text;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

/// <summary>
/// Makes libLibTorchSharp.so load with a libstdc++ older than GCC 13 by weakening its one
/// GLIBCXX_3.4.32 reference (see NativeLoadFix.targets). Edits bytes in place; no sizes change.
/// </summary>
public class PatchLibTorchSharpForOldLibStdCxx : Task
{
    private const string Symbol = "_ZSt21ios_base_library_initv";
    private const string Version = "GLIBCXX_3.4.32";

    [Required]
    public ITaskItem[] Libraries { get; set; } = Array.Empty<ITaskItem>();

    public override bool Execute()
    {
        string? libstdcxx = FindSystemLibStdCxx();
        if (libstdcxx == null)
        {
            Log.LogMessage(MessageImportance.Low, "libstdc++.so.6 not found in the usual places; LibTorchSharp left as shipped.");
            return true;
        }
        if (Contains(File.ReadAllBytes(libstdcxx), Encoding.ASCII.GetBytes(Version + "\0")))
        {
            Log.LogMessage(MessageImportance.Low, libstdcxx + " has " + Version + "; LibTorchSharp left as shipped.");
            return true;
        }
        foreach (ITaskItem item in Libraries)
        {
            string path = item.GetMetadata("FullPath");
            try
            {
                byte[] elf = File.ReadAllBytes(path);
                if (!Patch(elf))
                {
                    continue; // already patched, or nothing to patch
                }
                string temp = path + ".patching";
                File.WriteAllBytes(temp, elf);
                File.Copy(temp, path, true);
                File.Delete(temp);
                Log.LogMessage(MessageImportance.High, "Patched " + path + " to load with " + libstdcxx + " (which lacks " + Version + ").");
            }
            catch (Exception e)
            {
                Log.LogError("Could not patch " + path + " for the system libstdc++: " + e.Message);
                return false;
            }
        }
        return true;
    }

    private static string? FindSystemLibStdCxx()
    {
        string[] candidates =
        {
            "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/lib/x86_64-linux-gnu/libstdc++.so.6",
            "/usr/lib64/libstdc++.so.6", "/lib64/libstdc++.so.6", "/usr/lib/libstdc++.so.6",
            "/usr/lib/aarch64-linux-gnu/libstdc++.so.6",
        };
        foreach (string c in candidates)
        {
            if (File.Exists(c)) return c;
        }
        return null;
    }

    private static bool Contains(byte[] haystack, byte[] needle)
    {
        for (int i = 0; i <= haystack.Length - needle.Length; i++)
        {
            int j = 0;
            while (j < needle.Length && haystack[i + j] == needle[j]) j++;
            if (j == needle.Length) return true;
        }
        return false;
    }

    /// <summary>Returns true when something was changed.</summary>
    private static bool Patch(byte[] elf)
    {
        if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != (byte)'E' || elf[4] != 2 || elf[5] != 1)
            throw new InvalidDataException("not a 64-bit little-endian ELF file");
        long shoff = BitConverter.ToInt64(elf, 0x28);
        int shentsize = BitConverter.ToUInt16(elf, 0x3A);
        int shnum = BitConverter.ToUInt16(elf, 0x3C);
        int dynsym = -1, versym = -1, verneed = -1;
        for (int i = 0; i < shnum; i++)
        {
            uint type = BitConverter.ToUInt32(elf, (int)(shoff + i * shentsize + 4));
            if (type == 11) dynsym = i;
            else if (type == 0x6fffffff) versym = i;
            else if (type == 0x6ffffffe) verneed = i;
        }
        if (dynsym < 0 || versym < 0 || verneed < 0)
            throw new InvalidDataException("no .dynsym, .gnu.version or .gnu.version_r section");

        bool changed = false;
        long SectionOffset(int s) => BitConverter.ToInt64(elf, (int)(shoff + s * shentsize + 0x18));
        long SectionSize(int s) => BitConverter.ToInt64(elf, (int)(shoff + s * shentsize + 0x20));
        int SectionLink(int s) => (int)BitConverter.ToUInt32(elf, (int)(shoff + s * shentsize + 0x28));
        long symStrings = SectionOffset(SectionLink(dynsym));
        string ReadString(long strtab, uint offset)
        {
            int start = (int)(strtab + offset), end = start;
            while (elf[end] != 0) end++;
            return Encoding.ASCII.GetString(elf, start, end - start);
        }

        // 1. The symbol: weak binding, version index 1 (unversioned global).
        long symOff = SectionOffset(dynsym), count = SectionSize(dynsym) / 24, verOff = SectionOffset(versym);
        for (long i = 0; i < count; i++)
        {
            int entry = (int)(symOff + i * 24);
            if (BitConverter.ToUInt16(elf, entry + 6) != 0) continue; // defined here
            if (ReadString(symStrings, BitConverter.ToUInt32(elf, entry)) != Symbol) continue;
            byte weakInfo = (byte)((2 << 4) | (elf[entry + 4] & 0xf));
            if (elf[entry + 4] != weakInfo) { elf[entry + 4] = weakInfo; changed = true; }
            int v = (int)(verOff + i * 2);
            if (BitConverter.ToUInt16(elf, v) != 1) { elf[v] = 1; elf[v + 1] = 0; changed = true; }
        }

        // 2. The version requirement: VER_FLG_WEAK.
        long needStrings = SectionOffset(SectionLink(verneed));
        long need = SectionOffset(verneed);
        while (true)
        {
            int auxCount = BitConverter.ToUInt16(elf, (int)need + 2);
            long aux = need + BitConverter.ToUInt32(elf, (int)need + 8);
            for (int a = 0; a < auxCount; a++)
            {
                if (ReadString(needStrings, BitConverter.ToUInt32(elf, (int)aux + 8)) == Version)
                {
                    int flags = (int)aux + 4;
                    if ((elf[flags] & 2) == 0) { elf[flags] |= 2; changed = true; }
                }
                aux += BitConverter.ToUInt32(elf, (int)aux + 12);
            }
            uint next = BitConverter.ToUInt32(elf, (int)need + 12);
            if (next == 0) break;
            need += next;
        }
        return changed;
    }
}
